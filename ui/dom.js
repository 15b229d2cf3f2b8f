// dom.js: building the page without HTML strings. `h(tag, attrs, ...children)` makes an
// element; text always goes in as text nodes, so nothing the API answers is ever parsed as
// markup (the CSP forbids inline script anyway). Small formatting helpers live here too.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

// An SVG element (the donut); attributes only, never a style attribute.
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// Replaces the contents of `el`.
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

// "3 minutes ago" for an RFC 3339 time (null: "never").
export function ago(time) {
  if (!time) return 'never';
  const seconds = Math.round((Date.now() - Date.parse(time)) / 1000);
  if (Number.isNaN(seconds)) return time;
  if (seconds < 0) return 'in ' + ago(new Date(Date.now() + seconds * 1000).toISOString()).replace(' ago', '');
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

// A time element showing `ago` with the exact time as its tooltip.
export function when(time) {
  return h('time', { datetime: time || null, title: time || null }, ago(time));
}

// A state badge: the state's wire name, readable, with a colour class.
export function badge(state) {
  const text = String(state || 'unknown').replaceAll('_', ' ');
  return h('span', { class: `badge state-${state}`, dataset: { state } }, text);
}

// Wait `ms` milliseconds.
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Calls `fn` once, `ms` after the last of a burst of calls.
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
