// app.js: the dashboard's shell. It finds out who the page acts as (`GET /session`; a login
// form with `POST /session` when there is no session), starts the event stream, and routes
// the fragment (`#/`, `#/hosts`, `#/hosts/NAME`, `#/rollouts`, `#/rollouts/ID`,
// `#/rollouts/new`, `#/audit`) to a page. Client routes live in the fragment, never on the
// API's paths. The role decides which controls are drawn; the API enforces it anyway.

import { api, get, loadFeatures, whenUnauthorized } from './api.js';
import { h, mount } from './dom.js';
import * as live from './live.js';
import { auditPage, hostPage, hostsPage, overviewPage } from './pages.js';
import { rolloutFormPage, rolloutPage, rolloutsPage } from './rollouts.js';

const main = document.getElementById('main');
const session = { name: null, role: null, authEnabled: true };
let leavePage = () => {};

export function can(role) {
  const order = ['read', 'operate', 'admin'];
  return order.indexOf(session.role) >= order.indexOf(role);
}

function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}

function setUpTheme() {
  applyTheme(localStorage.getItem('tendhost-theme'));
  document.getElementById('theme').addEventListener('click', () => {
    const dark =
      document.documentElement.dataset.theme === 'dark' ||
      (!document.documentElement.dataset.theme && matchMedia('(prefers-color-scheme: dark)').matches);
    const next = dark ? 'light' : 'dark';
    localStorage.setItem('tendhost-theme', next);
    applyTheme(next);
  });
}

function setUpLive() {
  const badge = document.getElementById('live');
  live.onStatus((status) => {
    badge.textContent = status === 'live' ? 'live' : status === 'reconnecting' ? 'reconnecting…' : 'connecting…';
    badge.dataset.status = status;
  });
}

function showLogin(message) {
  leavePage();
  leavePage = () => {};
  live.stop();
  document.getElementById('nav').hidden = true;
  document.getElementById('logout').hidden = true;
  document.getElementById('who').textContent = '';
  const error = h('p', { class: 'error', role: 'alert', id: 'login-error' }, message || '');
  const input = h('input', {
    id: 'token',
    name: 'token',
    type: 'password',
    autocomplete: 'current-password',
    required: true,
    spellcheck: 'false',
    placeholder: 'th_…',
  });
  const form = h(
    'form',
    { class: 'card login', id: 'login-form' },
    h('h1', {}, 'Log in'),
    h('p', { class: 'muted' }, 'Paste an API token. The daemon checks it and keeps a session cookie; the token itself is not stored.'),
    h('label', { for: 'token' }, 'API token'),
    input,
    error,
    h('button', { type: 'submit', class: 'primary' }, 'Log in'),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    try {
      await api('POST', '/session', { token: input.value.trim() });
      input.value = '';
      await boot();
    } catch (err) {
      error.textContent = err.message;
    }
  });
  mount(main, form);
  input.focus();
}

async function route() {
  leavePage();
  leavePage = () => {};
  const hash = decodeURIComponent(location.hash.replace(/^#/, '')) || '/';
  const [path, search] = hash.split('?');
  const params = new URLSearchParams(search || '');
  const parts = path.split('/').filter(Boolean);
  for (const link of document.querySelectorAll('#nav a')) {
    const target = link.getAttribute('href').slice(1);
    const current = target === '/' ? parts.length === 0 : path.startsWith(target);
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  let page;
  if (parts.length === 0) page = overviewPage;
  else if (parts[0] === 'hosts' && parts.length === 1) page = hostsPage;
  else if (parts[0] === 'hosts') page = hostPage;
  else if (parts[0] === 'rollouts' && parts[1] === 'new') page = rolloutFormPage;
  else if (parts[0] === 'rollouts' && parts.length > 1) page = rolloutPage;
  else if (parts[0] === 'rollouts') page = rolloutsPage;
  else if (parts[0] === 'audit') page = auditPage;
  else page = null;
  const view = h('div', { class: 'view' });
  mount(main, view);
  if (!page) {
    mount(view, h('h1', {}, 'Not found'), h('p', {}, 'No page here. ', h('a', { href: '#/' }, 'Go to the overview')));
    return;
  }
  const context = { view, params, parts, can, session };
  try {
    leavePage = (await page(context)) || (() => {});
    // The data of this page is on screen (the browser tests and the bench read this mark).
    performance.mark(`tendhost:shown:${parts[0] || 'overview'}`);
    document.body.dataset.shown = hash;
  } catch (err) {
    mount(view, h('h1', {}, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, err.message));
  }
}

async function boot() {
  let me;
  try {
    me = await get('/session');
  } catch (err) {
    if (err.status === 401) return showLogin();
    mount(main, h('p', { class: 'error', role: 'alert' }, err.message));
    return;
  }
  session.name = me.name;
  session.role = me.role;
  session.authEnabled = me.auth_enabled;
  document.getElementById('who').textContent = `${me.name} (${me.role})`;
  document.getElementById('who').dataset.role = me.role;
  document.getElementById('nav').hidden = false;
  document.getElementById('nav-audit').hidden = !can('admin');
  document.getElementById('logout').hidden = !me.auth_enabled;
  await loadFeatures();
  live.start();
  await route();
}

whenUnauthorized(() => showLogin('The session has ended; log in again.'));

document.getElementById('logout').addEventListener('click', async () => {
  try {
    await api('DELETE', '/session');
  } finally {
    showLogin();
  }
});

window.addEventListener('hashchange', () => {
  if (session.role) route();
});

setUpTheme();
setUpLive();
boot();
