window.seen(document.currentScript.src);
