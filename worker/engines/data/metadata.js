// What the rendered page says about itself, read in the page for `metadata: true`.
// Bounded here (first 64 tags of each kind, 16 icons, strings cut at 2048 characters) and
// again in Python (shared/page_outputs.py: bounded_metadata), which trusts none of it.
() => {
  const MAX = 2048;
  const clip = (value) => (typeof value === "string" && value.trim() ? value.trim().slice(0, MAX) : null);
  const absolute = (href) => {
    try { return new URL(href, document.baseURI).href; } catch (error) { return null; }
  };
  const content = (selector) => {
    const element = document.querySelector(selector);
    return element ? clip(element.getAttribute("content")) : null;
  };
  const tags = (prefix) => {
    const found = {};
    let count = 0;
    for (const element of document.querySelectorAll("meta[property], meta[name]")) {
      const key = element.getAttribute("property") || element.getAttribute("name") || "";
      if (!key.toLowerCase().startsWith(prefix)) continue;
      const name = key.slice(prefix.length).slice(0, 128);
      const value = clip(element.getAttribute("content"));
      if (!name || value === null || name in found) continue;
      found[name] = value;
      if (++count >= 64) break;
    }
    return found;
  };
  const icons = [];
  for (const link of document.querySelectorAll("link[rel][href]")) {
    const rel = link.getAttribute("rel").toLowerCase().split(/\s+/);
    if (!rel.some((token) => token === "icon" || token === "apple-touch-icon" || token === "mask-icon")) continue;
    const url = absolute(link.getAttribute("href"));
    if (url === null) continue;
    icons.push({url: url.slice(0, MAX), rel: rel.join(" "), sizes: clip(link.getAttribute("sizes")),
                type: clip(link.getAttribute("type"))});
    if (icons.length >= 16) break;
  }
  const canonical = document.querySelector("link[rel~='canonical'][href]");
  const d = document.documentElement, b = document.body || d;
  return {
    title: clip(document.title),
    description: content("meta[name='description' i]"),
    canonical_url: canonical ? clip(absolute(canonical.getAttribute("href"))) : null,
    lang: clip(d.getAttribute("lang")),
    open_graph: tags("og:"),
    twitter: tags("twitter:"),
    icons: icons,
    scroll_width: Math.max(d.scrollWidth, d.offsetWidth, d.clientWidth, b.scrollWidth, b.offsetWidth),
    scroll_height: Math.max(d.scrollHeight, d.offsetHeight, d.clientHeight, b.scrollHeight, b.offsetHeight),
  };
}
