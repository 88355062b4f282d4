// The class names and ids used in the page (bounded), for generic element-hiding rules
// (EasyList's "##.ad-banner", "###sponsored"), and a way to add a style sheet that the
// page's Content-Security-Policy does not refuse (a constructed sheet, not a <style>).
({limit}) => {
  const classes = new Set(), ids = new Set();
  const walker = document.createTreeWalker(document.documentElement || document, NodeFilter.SHOW_ELEMENT);
  let seen = 0;
  for (let node = walker.currentNode; node && seen < limit; node = walker.nextNode()) {
    seen += 1;
    if (node.id) ids.add(node.id);
    if (node.classList) for (const name of node.classList) classes.add(name);
  }
  return {classes: Array.from(classes), ids: Array.from(ids)};
}
