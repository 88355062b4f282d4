// Adds a style sheet to the document (and returns how many rules it kept). A constructed
// sheet is used so the page's CSP (style-src) cannot refuse it; each rule is inserted on
// its own, so one selector this browser cannot parse spoils no other.
(css) => {
  const sheet = new CSSStyleSheet();
  let kept = 0;
  for (const rule of css.split('\n')) {
    if (!rule.trim()) continue;
    try { sheet.insertRule(rule, sheet.cssRules.length); kept += 1; } catch (e) { /* skipped */ }
  }
  document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
  return kept;
}
