// live.js: the event stream. One WebSocket to /ws/events (the session cookie authenticates
// it; the daemon checks the page's Origin). The last seq seen is remembered; after a dropped
// connection the page says it is reconnecting and comes back with `?since=<last seq>`, so
// the daemon replays what was missed (from disk after a restart) before going live. No
// polling anywhere: pages refresh only when an event says something changed.

const listeners = new Set();
const statusListeners = new Set();
const recent = [];
const MAX_RECENT = 200;

let socket = null;
let lastSeq = null;
let attempt = 0;
let status = 'connecting';
let stopped = false;

export function lastSeen() {
  return lastSeq;
}

// The latest events (newest last), for the activity list.
export function recentEvents() {
  return recent.slice();
}

export function onEvent(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function onStatus(listener) {
  statusListeners.add(listener);
  listener(status);
  return () => statusListeners.delete(listener);
}

function setStatus(next) {
  status = next;
  for (const listener of statusListeners) listener(next);
}

export function start() {
  stopped = false;
  connect();
}

export function stop() {
  stopped = true;
  if (socket) socket.close();
  socket = null;
}

function connect() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const since = lastSeq === null ? '' : `?since=${lastSeq}`;
  const ws = new WebSocket(`${scheme}//${location.host}/ws/events${since}`);
  socket = ws;
  ws.addEventListener('open', () => {
    const reconnected = attempt > 0;
    attempt = 0;
    setStatus('live');
    if (reconnected) dispatch({ type: 'reconnected' });
  });
  ws.addEventListener('message', (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    if (typeof event.seq === 'number') {
      if (lastSeq !== null && event.seq <= lastSeq) return;
      lastSeq = event.seq;
      recent.push(event);
      if (recent.length > MAX_RECENT) recent.shift();
    }
    dispatch(event);
  });
  ws.addEventListener('close', () => {
    if (socket !== ws || stopped) return;
    attempt += 1;
    setStatus('reconnecting');
    const delay = Math.min(5000, 250 * 2 ** Math.min(attempt, 5));
    setTimeout(() => {
      if (!stopped && socket === ws) connect();
    }, delay);
  });
}

function dispatch(event) {
  for (const listener of listeners) {
    try {
      listener(event);
    } catch (err) {
      console.error('event listener failed', err);
    }
  }
}
