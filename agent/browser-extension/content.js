// Safeguard page reader: the content script, in every frame of every page.
//
// It reads the text a pupil can see and hands it to the background worker,
// which passes it to the Safeguard agent on this laptop (native messaging).
// The agent matches it against the school's term libraries and keeps only
// what matches; nothing is matched or stored here.
//
// What "can see" means here:
// - text is read in blocks (paragraphs, list items, table cells, divs),
//   each once it is rendered inside the viewport (an IntersectionObserver),
//   so text further down a page is read when it is scrolled into view, and
//   the agent's screenshot shows what was read;
// - then only what changes (a MutationObserver, batched): a new chat
//   message, loaded comments, an edited block;
// - a block's exact text is sent once per page however often it is
//   re-rendered or scrolled past;
// - never form fields (no input, textarea or select is read, so no password
//   field), editable areas (what the pupil types is the agent's keyboard
//   source), scripts, styles, or hidden elements;
// - only while the page is visible (not a background tab);
// - bounded: blocks cut at 8,000 characters, 64,000 a batch, a budget of
//   256,000 a second per frame, 4,000,000 per page.
//
// Known gaps: text inside shadow DOM, canvas, images and video is not
// read; a cross-origin frame is read by its own copy of this script.
(() => {
  "use strict";
  const api = globalThis.browser ?? globalThis.chrome;
  if (!api?.runtime?.id || globalThis.__safeguardPageReader) {
    return;
  }
  globalThis.__safeguardPageReader = true;

  const BLOCK_CHARS = 8000;
  const BATCH_CHARS = 64000;
  const BUDGET_CHARS = 256000; // per second, per frame
  const PAGE_CHARS = 4000000;
  const BATCH_DELAY_MS = 250;
  const SENT_MEMORY = 20000;
  const ALIVE_MS = 20000;

  const BLOCK = new Set([
    "address", "article", "aside", "blockquote", "body", "button", "caption",
    "dd", "details", "dialog", "div", "dl", "dt", "fieldset", "figcaption",
    "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "html", "legend", "li", "main", "menu", "nav", "ol", "p", "pre",
    "section", "summary", "table", "tbody", "td", "tfoot", "th", "thead",
    "tr", "ul",
  ]);
  const SKIP = new Set([
    "audio", "canvas", "embed", "head", "iframe", "input", "math", "meta",
    "noscript", "object", "option", "script", "select", "style", "svg",
    "template", "textarea", "title", "video",
  ]);
  const F = globalThis.NodeFilter;

  const known = new WeakSet(); // blocks observed
  const visible = new Set(); // blocks in the viewport now
  const dirty = new Set(); // blocks whose text may be new
  const sent = new Map(); // hash of a text sent → order, bounded
  let sentOrder = 0;
  let budget = BUDGET_CHARS;
  let budgetAt = performance.now();
  let pageChars = 0;
  let timer = null;
  let stopped = false;

  function hash(text) {
    // cyrb53: 53 bits, enough to tell a page's blocks apart.
    let h1 = 0xdeadbeef ^ text.length;
    let h2 = 0x41c6ce57 ^ text.length;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 2654435761);
      h2 = Math.imul(h2 ^ c, 1597334677);
    }
    h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
    h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
    return 4294967296 * (2097151 & h2) + (h1 >>> 0);
  }

  function remember(key) {
    sent.set(key, ++sentOrder);
    if (sent.size > SENT_MEMORY) {
      const cut = sentOrder - SENT_MEMORY / 2;
      for (const [k, at] of sent) {
        if (at <= cut) sent.delete(k);
      }
    }
  }

  function skipped(el) {
    return SKIP.has(el.localName) || el.hidden === true || el.isContentEditable === true;
  }

  // The nearest block holding a node (the body for text directly in it).
  function blockOf(node) {
    let el = node.nodeType === 1 ? node : node.parentElement;
    while (el && !BLOCK.has(el.localName)) {
      el = el.parentElement;
    }
    return el;
  }

  // Blocks holding text under `root`, found and marked to be read.
  function collect(root) {
    if (root.nodeType === 3) {
      if (/\S/.test(root.data)) note(blockOf(root));
      return;
    }
    if (root.nodeType !== 1 || skipped(root)) return;
    const walker = document.createTreeWalker(root, F.SHOW_ELEMENT | F.SHOW_TEXT, {
      acceptNode(n) {
        if (n.nodeType === 3) return /\S/.test(n.data) ? F.FILTER_ACCEPT : F.FILTER_SKIP;
        return skipped(n) ? F.FILTER_REJECT : F.FILTER_SKIP;
      },
    });
    let last = null;
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const b = blockOf(n);
      if (b !== last) {
        note(b);
        last = b;
      }
    }
  }

  function note(block) {
    if (!block) return;
    if (!known.has(block)) {
      known.add(block);
      seen.observe(block);
    }
    dirty.add(block);
  }

  function shown(el) {
    return !el.checkVisibility || el.checkVisibility({ visibilityProperty: true, opacityProperty: true });
  }

  // A block's own text: its text nodes, through inline elements, leaving
  // nested blocks to be read as blocks of their own.
  function read(block) {
    if (!block.isConnected || skipped(block) || !shown(block)) return "";
    const parts = [];
    let length = 0;
    const walker = document.createTreeWalker(block, F.SHOW_ELEMENT | F.SHOW_TEXT, {
      acceptNode(n) {
        if (n.nodeType === 3) return F.FILTER_ACCEPT;
        if (n.localName === "br") {
          parts.push(" ");
          return F.FILTER_REJECT;
        }
        if (BLOCK.has(n.localName) || skipped(n) || !shown(n)) return F.FILTER_REJECT;
        return F.FILTER_SKIP;
      },
    });
    for (let n = walker.nextNode(); n && length < BLOCK_CHARS; n = walker.nextNode()) {
      parts.push(n.data);
      length += n.data.length;
    }
    return parts.join("").replace(/\s+/g, " ").trim().slice(0, BLOCK_CHARS);
  }

  function later(ms) {
    if (timer === null && !stopped) {
      timer = setTimeout(flush, ms);
    }
  }

  function flush() {
    timer = null;
    if (stopped || document.visibilityState !== "visible") return;
    const began = performance.now();
    budget = Math.min(BUDGET_CHARS, budget + ((began - budgetAt) / 1000) * BUDGET_CHARS);
    budgetAt = began;
    const blocks = [];
    let chars = 0;
    for (const block of dirty) {
      if (!block.isConnected) {
        dirty.delete(block);
        visible.delete(block);
        continue;
      }
      if (!visible.has(block)) continue;
      if (chars >= BATCH_CHARS || chars >= budget) {
        later(chars >= budget ? 1000 : 0);
        break;
      }
      dirty.delete(block);
      const text = read(block);
      if (text.length === 0) continue;
      const key = hash(text);
      if (sent.has(key)) continue;
      remember(key);
      blocks.push(text);
      chars += text.length;
    }
    if (blocks.length === 0) return;
    budget -= chars;
    pageChars += chars;
    if (pageChars >= PAGE_CHARS) {
      stop();
    }
    const cost = performance.now() - began;
    send({ kind: "text", frame_url: location.href, blocks, reader_us: Math.round(cost * 1000) });
  }

  function send(message) {
    try {
      const sending = api.runtime.sendMessage(message);
      if (sending?.catch) sending.catch(() => {});
    } catch {
      // The extension was reloaded or removed: this copy has no one to
      // talk to any more.
      stop();
    }
  }

  function stop() {
    stopped = true;
    seen.disconnect();
    changes.disconnect();
  }

  const seen = new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (e.isIntersecting) {
        visible.add(e.target);
      } else {
        visible.delete(e.target);
      }
    }
    later(BATCH_DELAY_MS);
  });

  const changes = new MutationObserver((mutations) => {
    for (const m of mutations) {
      if (m.type === "characterData") {
        if (/\S/.test(m.target.data)) note(blockOf(m.target));
      } else {
        for (const n of m.addedNodes) collect(n);
      }
    }
    later(BATCH_DELAY_MS);
  });

  async function start() {
    let answer;
    try {
      answer = await api.runtime.sendMessage({ kind: "hello", frame_url: location.href });
    } catch {
      return;
    }
    if (!answer?.read) return;
    changes.observe(document, { subtree: true, childList: true, characterData: true });
    collect(document.body ?? document.documentElement);
    document.addEventListener("visibilitychange", () => later(0));
    if (window === window.top) {
      setInterval(() => {
        if (!stopped && document.visibilityState === "visible") send({ kind: "alive" });
      }, ALIVE_MS);
    }
  }

  start();
})();
