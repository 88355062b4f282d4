// Finds what a reader would call a cookie-consent banner or overlay, whatever wrote it,
// and gets it out of the picture: click its accept (else close) control, then hide what is
// left, remove scroll locks and backdrop dimming. Returns what it did.
//
// A candidate is an element laid over the page: position fixed or sticky, an open
// <dialog>, or an aria-modal dialog; searched in the document, open shadow roots and
// same-origin iframes. It is a consent banner when it is visible, covers a meaningful share
// of the viewport, holds little of the page's text (never the page's main content), and its
// text uses consent vocabulary (cookies, consent... in 10+ languages) together with an
// accept/close control, or it is a wall covering most of the viewport. Cross-origin iframes
// laid over the page count when their name, id, title or URL say consent/cookies.
//
// With {watch: true} (an init script) it also keeps a MutationObserver that runs the pass
// again, debounced, when the page adds elements: banners injected seconds after load.
(config) => {
  const MIN_SHARE = 0.01;        // of the viewport's area
  const WALL_SHARE = 0.5;        // a wall needs no control: it is hidden
  const MAX_TEXT = 4000;         // characters: more is content, not a banner
  const MAX_PAGE_TEXT_SHARE = 0.5;
  const MAX_ELEMENTS = 30000;

  const CONSENT = new RegExp([
    'cookies?', 'consent', 'gdpr', 'tracking technolog', 'we value your privacy',
    'your privacy choices', 'privacy settings', 'privacy preferences',
    'einwilligung', 'zustimm', 'datenschutzeinstellungen', 'dsgvo',         // de
    'consentement', 'traceurs', 'rgpd', 'vie priv[ée]e',                     // fr
    'consentimiento', 'galletas',                                           // es
    'consenso', 'utilizza(iamo)? (i )?cookie',                               // it
    'consentimento', 'lgpd',                                                 // pt
    'toestemming', 'gebruikt cookies', '\\bavg\\b',                                // nl
    'ciasteczk', 'plik(i|ów) cookie', 'zgod[aęy]', '\\brodo\\b',                   // pl
    'kakor', 'samtyck',                                                      // sv
    'クッキー', 'cookie', '同意', '個人情報',                                 // ja
  ].join('|'), 'i');
  const ACCEPT = new RegExp('^(' + [
    'accept( all| all cookies| cookies| and close| and continue| & close)?', 'i accept',
    'agree( and close| & close| and continue)?', 'i agree', 'allow( all| all cookies| cookies)?',
    'ok(ay)?', 'got it', 'i understand', 'understood', 'continue', 'yes,? i agree',
    'that\'?s ok', 'sounds good', 'alright',
    'alle akzeptieren', 'akzeptieren', 'alle annehmen', 'annehmen', 'zustimmen',
    'alle zulassen', 'zulassen', 'einverstanden', 'verstanden', 'ich stimme zu', 'alles klar',
    'tout accepter', 'accepter( et fermer| tout| les cookies)?', 'j\'accepte', 'd\'accord',
    'autoriser( tout)?', 'compris', 'continuer',
    'aceptar( todo| todas| cookies| y cerrar)?', 'acepto', 'de acuerdo', 'permitir( todo)?',
    'entendido', 'vale',
    'accetta( tutti| tutto| i cookie)?', 'accetto', 'consenti( tutti)?', 'ho capito', 'va bene',
    'aceitar( todos| tudo| cookies)?', 'aceito', 'concordo', 'permitir todos', 'entendi',
    'accepteren', 'alles accepteren', 'akkoord', 'ik ga akkoord', 'toestaan', 'alles toestaan',
    'prima',
    'akceptuj[eę]?', 'zaakceptuj( wszystkie)?', 'akceptuj wszystkie', 'zgadzam si[eę]',
    'zezw[oó]l( na wszystkie)?', 'rozumiem', 'przejd[zź] do serwisu',
    'acceptera( alla)?', 'godk[äa]nn( alla)?', 'jag godk[äa]nner', 'till[åa]t( alla)?',
    'jag f[öo]rst[åa]r', 'godta',
    '同意する', '同意します', '同意', 'すべて同意', '承諾', '許可する', '了解', 'ok',
  ].join('|') + ')[.!\\s]*$', 'i');
  const CLOSE = new RegExp('^(' + [
    '×', '✕', '✖', 'x', 'close', 'dismiss', 'schlie(ß|ss)en', 'fermer', 'cerrar', 'chiudi',
    'fechar', 'sluiten', 'zamknij', 'st[äa]ng', '閉じる', 'no thanks',
  ].join('|') + ')[.!\\s]*$', 'i');
  const CONSENT_FRAME = /consent|cookie|cmp|gdpr|privacy/i;

  const viewport = {w: window.innerWidth, h: window.innerHeight};
  const area = viewport.w * viewport.h;

  function visible(el) {
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden' || Number(style.opacity) === 0) return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  }
  function share(el) {
    const r = el.getBoundingClientRect();
    // Frames' elements are measured in their frame; callers pass the frame element instead.
    const w = Math.max(0, Math.min(r.right, viewport.w) - Math.max(r.left, 0));
    const h = Math.max(0, Math.min(r.bottom, viewport.h) - Math.max(r.top, 0));
    return (w * h) / area;
  }
  // Text of an element with its open shadow roots and same-origin frames.
  function textOf(el, budget = MAX_TEXT * 2) {
    let text = '';
    const walk = (node) => {
      if (text.length > budget) return;
      if (node.nodeType === Node.TEXT_NODE) { text += node.data + ' '; return; }
      if (node.nodeType !== Node.ELEMENT_NODE && node.nodeType !== Node.DOCUMENT_FRAGMENT_NODE) return;
      if (node.nodeName === 'SCRIPT' || node.nodeName === 'STYLE') return;
      if (node.shadowRoot) walk(node.shadowRoot);
      if (node.nodeName === 'IFRAME') {
        try { if (node.contentDocument && node.contentDocument.body) walk(node.contentDocument.body); } catch (e) { /* cross-origin */ }
      }
      if (node.nodeName === 'INPUT' && node.value) text += node.value + ' ';
      for (const child of node.childNodes) walk(child);
    };
    walk(el);
    return text.replace(/\s+/g, ' ').trim();
  }
  // Controls inside an element (its shadow roots and same-origin frames included).
  function controlsOf(el) {
    const found = [];
    const walk = (root) => {
      for (const c of root.querySelectorAll('button, a, [role=button], input[type=button], input[type=submit], [onclick], [tabindex]')) found.push(c);
      for (const host of root.querySelectorAll('*')) if (host.shadowRoot) walk(host.shadowRoot);
      for (const frame of root.querySelectorAll('iframe')) {
        try { if (frame.contentDocument) walk(frame.contentDocument); } catch (e) { /* cross-origin */ }
      }
    };
    if (el.shadowRoot) walk(el.shadowRoot);
    if (el.nodeName === 'IFRAME') { try { if (el.contentDocument) walk(el.contentDocument); } catch (e) { /* cross-origin */ } }
    walk(el);
    return found;
  }
  function label(control) {
    const own = (control.innerText || control.value || control.textContent || '').replace(/\s+/g, ' ').trim();
    return own || (control.getAttribute('aria-label') || control.getAttribute('title') || '').trim();
  }
  function overlaid(el) {
    const style = getComputedStyle(el);
    if (style.position === 'fixed' || style.position === 'sticky') return true;
    if (el.nodeName === 'DIALOG' && el.open) return true;
    return el.getAttribute('aria-modal') === 'true' && style.position === 'absolute';
  }
  // Outermost overlaid elements of a document and its open shadow roots (not inside one
  // another), with the frame element standing for same-origin frames' candidates.
  function candidates(root, frameElement, out, counter) {
    const stack = [root];
    while (stack.length && counter.n < MAX_ELEMENTS) {
      const node = stack.pop();
      for (let child = node.lastElementChild; child; child = child.previousElementSibling) {
        counter.n += 1;
        let isCandidate = false;
        try { isCandidate = overlaid(child); } catch (e) { /* detached */ }
        if (isCandidate) { out.push({el: child, frame: frameElement}); continue; }
        if (child.shadowRoot) stack.push(child.shadowRoot);
        if (child.nodeName === 'IFRAME') {
          let doc = null;
          try { doc = child.contentDocument; } catch (e) { /* cross-origin */ }
          if (doc && doc.body) candidates(doc.body, frameElement || child, out, counter);
        }
        stack.push(child);
      }
    }
    return out;
  }

  function hide(el) {
    el.style.setProperty('display', 'none', 'important');
    el.setAttribute('data-shotline-hidden', 'consent');
  }
  function unlock(doc) {
    for (const el of [doc.documentElement, doc.body]) {
      if (!el) continue;
      const style = getComputedStyle(el);
      if (style.overflow === 'hidden' || style.overflowY === 'hidden') {
        el.style.setProperty('overflow', 'visible', 'important');
        el.style.setProperty('overflow-y', 'auto', 'important');
      }
      if (style.position === 'fixed') {
        el.style.setProperty('position', 'static', 'important');
        el.style.setProperty('top', 'auto', 'important');
      }
      if (style.filter !== 'none') el.style.setProperty('filter', 'none', 'important');
      if (style.pointerEvents === 'none') el.style.setProperty('pointer-events', 'auto', 'important');
    }
  }
  // Backdrops: overlaid elements covering most of the viewport with no text of their own
  // and a see-through (dimming) or blurring look.
  function removeBackdrops(doc) {
    let removed = 0;
    for (const {el} of candidates(doc.body || doc.documentElement, null, [], {n: 0})) {
      if (!visible(el) || share(el) < 0.6 || textOf(el, 40).length > 0) continue;
      const style = getComputedStyle(el);
      const bg = style.backgroundColor;
      const alpha = bg.startsWith('rgba') ? Number(bg.split(',')[3].replace(')', '')) : (bg === 'transparent' ? 0 : 1);
      const dims = (alpha > 0 && alpha < 1) || Number(style.opacity) < 1 || style.backdropFilter !== 'none';
      if (dims && Number(style.zIndex || 0) >= 0) { hide(el); removed += 1; }
    }
    return removed;
  }

  function pass() {
    const pageText = textOf(document.body || document.documentElement, 200000).length || 1;
    const found = [];
    for (const {el, frame} of candidates(document.body || document.documentElement, null, [], {n: 0})) {
      const measured = frame || el;
      if (el.getAttribute && el.getAttribute('data-shotline-hidden')) continue;
      let shown = false;
      try { shown = visible(measured) && (frame ? visible(el) : true); } catch (e) { continue; }
      if (!shown) continue;
      const covered = share(frame ? measured : el);
      if (covered < MIN_SHARE) continue;
      let text = textOf(el);
      if (el.nodeName === 'IFRAME') {
        let readable = true;
        try { readable = !!el.contentDocument; } catch (e) { readable = false; }
        if (!readable) {
          const names = [el.id, el.name, el.title, el.src, el.className].join(' ');
          if (CONSENT_FRAME.test(names)) { hide(el); found.push({kind: 'frame', action: 'hidden'}); }
          continue;
        }
      }
      if (!text || text.length > MAX_TEXT || text.length / pageText > MAX_PAGE_TEXT_SHARE) continue;
      if (!CONSENT.test(text)) continue;
      const controls = controlsOf(el).filter(c => { try { return visible(c); } catch (e) { return false; } });
      const accept = controls.find(c => ACCEPT.test(label(c)));
      const close = accept ? null : controls.find(c => CLOSE.test(label(c)));
      if (!accept && !close && covered < WALL_SHARE) continue;
      const control = accept || close;
      if (control) { try { control.click(); } catch (e) { /* the page's handler threw */ } }
      found.push({el, frame, kind: accept ? 'accepted' : close ? 'closed' : 'wall',
                  text: text.slice(0, 80)});
    }
    return found;
  }
  function finish(found) {
    // Whatever the click did, the banner must not be in the picture: hide what is left.
    for (const item of found) {
      if (!item.el) continue;
      try {
        if (item.el.isConnected && visible(item.el)) hide(item.el);
        if (item.frame && item.frame.isConnected && visible(item.frame) && share(item.frame) > 0.5) hide(item.frame);
      } catch (e) { /* detached */ }
    }
    let backdrops = 0;
    if (found.length) {
      unlock(document);
      backdrops = removeBackdrops(document);
    }
    return {banners: found.map(item => ({kind: item.kind, text: item.text || ''})), backdrops};
  }

  if (config && config.watch) {
    if (window.__shotlineConsentWatch) return null;
    window.__shotlineConsentWatch = true;
    let timer = null, runs = 0;
    const run = () => {
      timer = null;
      if (runs++ > 20 || !document.body) return;
      const found = pass();
      if (found.length) setTimeout(() => finish(found), 300);
    };
    const start = () => {
      new MutationObserver(() => { if (!timer) timer = setTimeout(run, 250); })
        .observe(document.documentElement, {childList: true, subtree: true, attributes: true, attributeFilter: ['style', 'class', 'open']});
    };
    if (document.documentElement) start(); else document.addEventListener('DOMContentLoaded', start);
    return null;
  }
  const found = pass();
  if (!found.length) return finish(found);
  return new Promise(resolve => setTimeout(() => resolve(finish(found)), config && config.settleMs || 400));
}
