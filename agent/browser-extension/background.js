// Safeguard page reader: the background worker (a service worker in
// Chromium, Chrome, Edge and Brave; a background script in Firefox).
//
// It keeps one native-messaging port open to the Safeguard agent
// (`agent native-host`, registered as org.safeguard.agent by
// `agent browser-integration install`), tells the content scripts whether
// a page may be read (the school's policy can exclude sites), and hands
// them the text they read with the page's address and title. An open port
// is also how the agent knows this browser is watched: a browser in front
// with no port open for 60 s is reported to the school.
"use strict";

const api = globalThis.browser ?? globalThis.chrome;
const HOST = "org.safeguard.agent";
const RETRY_MS = 5000;
const ALIVE_MS = 20000;
// How long a page waits for the agent's settings before reading anyway
// (the agent filters excluded sites again itself).
const CONFIG_WAIT_MS = 2000;

let port = null;
let config = null;
let retry = null;
const waiting = [];

function connect() {
  if (port !== null) return;
  try {
    port = api.runtime.connectNative(HOST);
  } catch (e) {
    port = null;
    again();
    return;
  }
  port.onMessage.addListener((message) => {
    if (message?.kind === "config") {
      config = {
        excluded: (message.excluded_sites ?? []).map((d) => String(d).toLowerCase()),
        reading: message.reading !== false,
      };
      for (const wake of waiting.splice(0)) wake();
    }
  });
  port.onDisconnect.addListener(() => {
    port = null;
    config = null;
    again();
  });
  port.postMessage({
    kind: "hello",
    extension_version: api.runtime.getManifest().version,
    user_agent: navigator.userAgent,
  });
}

function again() {
  if (retry === null) {
    retry = setTimeout(() => {
      retry = null;
      connect();
    }, RETRY_MS);
  }
}

function host(url) {
  try {
    return new URL(url).hostname.toLowerCase().replace(/\.$/, "");
  } catch {
    return "";
  }
}

function excluded(url) {
  const h = host(url);
  return (
    h !== "" &&
    (config?.excluded ?? []).some((d) => h === d || h.endsWith("." + d))
  );
}

function readable(sender) {
  if (config !== null && !config.reading) return false;
  const page = sender.tab?.url ?? sender.url ?? "";
  return !excluded(page) && !excluded(sender.url ?? "");
}

api.runtime.onMessage.addListener((message, sender, reply) => {
  if (sender.id !== api.runtime.id) return false;
  connect();
  switch (message?.kind) {
    case "hello": {
      let answered = false;
      const answer = () => {
        if (!answered) {
          answered = true;
          reply({ read: readable(sender) });
        }
      };
      if (config !== null) {
        answer();
        return false;
      }
      waiting.push(answer);
      setTimeout(answer, CONFIG_WAIT_MS);
      return true;
    }
    case "text":
      if (port !== null && readable(sender) && Array.isArray(message.blocks)) {
        port.postMessage({
          kind: "text",
          page_url: sender.tab?.url ?? sender.url ?? "",
          page_title: sender.tab?.title ?? "",
          frame_url: sender.url ?? "",
          blocks: message.blocks,
          reader_us: message.reader_us ?? 0,
        });
      }
      return false;
    case "alive":
      port?.postMessage({ kind: "alive" });
      return false;
    default:
      return false;
  }
});

api.runtime.onStartup?.addListener(connect);
api.runtime.onInstalled?.addListener(connect);
setInterval(() => port?.postMessage({ kind: "alive" }), ALIVE_MS);
connect();
