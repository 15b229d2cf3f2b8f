// pages.js: the overview, the hosts table, one host, and the audit trail. Each page draws
// from the API, then listens to the event stream and redraws the parts an event touches.
// A page function returns its clean-up (unsubscribe), called when the page is left.

import { ApiError, featureProps, get, has, post, query } from './api.js';
import { ago, badge, debounce, h, mount, svg, when } from './dom.js';
import * as live from './live.js';

// Events too frequent for the overview (they show on the host page).
const QUIET = new Set(['job_output', 'update_progress']);

const HOST_STATES = [
  'idle', 'querying', 'pending_updates', 'updating', 'waiting_reboot',
  'rebooting', 'verifying', 'failed', 'unreachable',
];

// A section with a heading.
function card(title, ...body) {
  const id = 'card-' + title.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), ...body);
}

// An error where the page shows it: the API's own message, with its code.
export function errorBox(err) {
  const code = err instanceof ApiError ? ` (${err.code})` : '';
  return h('p', { class: 'error', role: 'alert' }, err.message + code);
}

// A button that runs `action`, shows the API's error next to itself, and disables itself
// while it runs.
export function actionButton(label, action, attrs = {}) {
  const out = h('span', { class: 'action-result', 'aria-live': 'polite' });
  const button = h('button', { type: 'button', ...attrs }, label);
  button.addEventListener('click', async () => {
    button.disabled = true;
    mount(out);
    try {
      const text = await action();
      if (text) mount(out, h('span', { class: 'ok' }, text));
    } catch (err) {
      mount(out, errorBox(err));
    } finally {
      button.disabled = false;
    }
  });
  return h('span', { class: 'action' }, button, out);
}

// ---------------------------------------------------------------- overview

function donut(summary) {
  const slices = [
    ['Up to date', summary.up_to_date, 'ok'],
    ['Pending updates', summary.with_pending, 'warn'],
    ['Security updates', summary.with_security, 'bad'],
  ];
  const total = Math.max(1, summary.n_hosts);
  const radius = 15.915; // circumference 100
  let offset = 25;
  const rings = [svg('circle', { class: 'ring-bg', cx: 21, cy: 21, r: radius, fill: 'none', 'stroke-width': 6 })];
  for (const [, count, tone] of slices) {
    const share = (count / total) * 100;
    if (share > 0) {
      rings.push(svg('circle', {
        class: `ring ring-${tone}`, cx: 21, cy: 21, r: radius, fill: 'none', 'stroke-width': 6,
        'stroke-dasharray': `${share} ${100 - share}`, 'stroke-dashoffset': offset,
      }));
    }
    offset -= share;
  }
  const label = slices.map(([name, count]) => `${name}: ${count}`).join(', ');
  return h('div', { class: 'donut' },
    svg('svg', { viewBox: '0 0 42 42', width: 160, height: 160, role: 'img', 'aria-label': label },
      ...rings,
      svg('text', { x: 21, y: 23, 'text-anchor': 'middle', class: 'donut-total' }, String(summary.n_hosts))),
    h('ul', { class: 'legend' }, slices.map(([name, count, tone]) =>
      h('li', {}, h('span', { class: `swatch swatch-${tone}`, 'aria-hidden': 'true' }), `${name}: `, h('strong', { dataset: { count: tone } }, String(count))))));
}

function rolloutRow(rollout) {
  return h('tr', {},
    h('td', {}, h('a', { href: `#/rollouts/${encodeURIComponent(rollout.id)}`, title: rollout.id, 'aria-label': `rollout ${rollout.id}` },
      h('code', {}, '…' + rollout.id.slice(-12)))),
    h('td', {}, rollout.kind + (rollout.dry_run ? ' (dry run)' : '')),
    h('td', {}, badge(rollout.state)),
    h('td', {}, `${rollout.counts.succeeded}/${rollout.n_hosts} succeeded, ${rollout.counts.failed} failed`),
    h('td', {}, when(rollout.created_at)));
}

export function rolloutTable(rollouts) {
  if (!rollouts.length) return h('p', { class: 'muted' }, 'No rollouts yet.');
  return h('div', { class: 'scroll' }, h('table', { class: 'rollouts' },
    h('thead', {}, h('tr', {}, ['Rollout', 'Kind', 'State', 'Progress', 'Started'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rollouts.map(rolloutRow))));
}

export async function overviewPage({ view }) {
  const body = h('div', { class: 'grid' });
  const activity = h('ol', { class: 'activity', id: 'activity', reversed: true });
  mount(view, h('h1', {}, 'Overview'), body,
    card('Activity', h('p', { class: 'muted' }, 'Events from the live stream, newest first (missed ones are replayed after a reconnect).'), activity));

  async function draw() {
    const [summary, rollouts, schedules] = await Promise.all([
      get('/fleet/summary'),
      get('/rollouts?per_page=8'),
      has('/schedules') ? get('/schedules').catch(() => null) : Promise.resolve(null),
    ]);
    const states = h('ul', { class: 'states' }, summary.by_state.map((s) =>
      h('li', { class: s.hosts ? '' : 'zero' },
        h('a', { href: `#/hosts?state=${s.state}` }, badge(s.state)),
        h('strong', { dataset: { stateCount: s.state } }, String(s.hosts)))));
    const attention = summary.attention.length
      ? h('ul', { class: 'plain' }, summary.attention.map((host) => h('li', {},
        h('a', { href: `#/hosts/${encodeURIComponent(host.name)}` }, host.name), ' ', badge(host.state),
        host.reason ? h('span', { class: 'muted' }, ' ' + host.reason) : null)))
      : h('p', { class: 'muted' }, 'Nothing failed or unreachable.');
    const reboot = summary.reboot_hosts.length
      ? h('ul', { class: 'plain' }, summary.reboot_hosts.map((name) => h('li', {}, h('a', { href: `#/hosts/${encodeURIComponent(name)}` }, name))))
      : h('p', { class: 'muted' }, 'No host needs a reboot.');
    const osMax = Math.max(1, ...summary.os.map((o) => o.hosts));
    const os = h('ul', { class: 'bars' }, summary.os.map((o) => {
      const bar = h('span', { class: 'bar', 'aria-hidden': 'true' });
      bar.style.width = `${Math.round((o.hosts / osMax) * 100)}%`;
      return h('li', {}, h('span', { class: 'bar-label' }, o.os), h('span', { class: 'bar-track' }, bar), h('strong', {}, String(o.hosts)));
    }));
    const running = rollouts.data.filter((r) => r.state === 'running');
    const cards = [
      card('Hosts by state', h('p', { class: 'big' }, h('strong', { id: 'n-hosts' }, String(summary.n_hosts)), ' hosts'), states),
      card('Updates', donut(summary),
        h('p', {}, h('strong', { id: 'n-pending' }, String(summary.pending_updates)), ' pending updates, ',
          h('strong', { id: 'n-security' }, String(summary.security_updates)), ' of them security updates.')),
      card(`Needs attention (${summary.needs_attention})`, attention),
      card(`Reboot needed (${summary.reboot_required})`, reboot),
      card('Operating systems', os),
      card('Rollouts', running.length ? h('p', {}, `${running.length} running.`) : h('p', { class: 'muted' }, 'None running.'), rolloutTable(rollouts.data),
        h('p', {}, h('a', { href: '#/rollouts' }, 'All rollouts'))),
    ];
    if (schedules) cards.push(card('Next scheduled runs', scheduleList(schedules)));
    mount(body, ...cards);
  }

  function drawActivity() {
    // Output lines and package progress belong to the host page; the rest is listed here.
    const events = live.recentEvents().filter((e) => !QUIET.has(e.type)).slice(-50).reverse();
    mount(activity, events.map((event) => h('li', { dataset: { seq: event.seq } },
      h('span', { class: 'seq' }, '#' + event.seq), ' ', describe(event), ' ', h('span', { class: 'muted' }, ago(event.time)))));
  }

  await draw();
  drawActivity();
  const redraw = debounce(() => draw().catch(() => {}), 150);
  const off = live.onEvent((event) => {
    if (QUIET.has(event.type)) return;
    drawActivity();
    redraw();
  });
  return off;
}

function scheduleList(schedules) {
  const items = (schedules.data || schedules || []).slice();
  if (!items.length) return h('p', { class: 'muted' }, 'No schedules.');
  const next = (s) => s.next_run || s.next_run_at || s.next || null;
  items.sort((a, b) => String(next(a)).localeCompare(String(next(b))));
  return h('ul', { class: 'plain' }, items.slice(0, 10).map((s) =>
    h('li', {}, h('strong', {}, s.name || s.id || 'schedule'), ' ', s.cron || s.schedule || '', ' — next ', when(next(s)))));
}

// One line about an event, for the activity list.
export function describe(event) {
  switch (event.type) {
    case 'host_state_changed': return `${event.host}: ${event.from} → ${event.to}`;
    case 'job_started': return `${event.host}: ${event.kind} started (${event.job_id})`;
    case 'job_finished': return `${event.host}: job ${event.job_id} ${event.outcome}`;
    case 'update_progress': return `${event.host}: ${event.package} (${event.done}/${event.total})`;
    case 'host_connected': return `${event.host}: connected`;
    case 'host_disconnected': return `${event.host}: disconnected (${event.reason})`;
    case 'rollout_started': return `rollout ${event.rollout_id} started on ${event.hosts.length} hosts`;
    case 'batch_started': return `rollout ${event.rollout_id}: batch ${event.batch + 1} started`;
    case 'batch_finished': return `rollout ${event.rollout_id}: batch ${event.batch + 1} finished (${event.succeeded} ok, ${event.failed} failed)`;
    case 'rollout_finished': return `rollout ${event.rollout_id} ${event.state}`;
    case 'host_added': return `${event.host}: added`;
    case 'host_removed': return `${event.host}: removed`;
    default: return event.type.replaceAll('_', ' ');
  }
}

// ---------------------------------------------------------------- hosts table

const COLUMNS = [
  ['name', 'Name'], [null, 'Tags / groups'], ['state', 'State'], ['pending', 'Pending'],
  ['security', 'Security'], ['reboot', 'Reboot'], ['last_check', 'Last check'], [null, 'Current job'],
];

export async function hostsPage({ view, params }) {
  const state = {
    search: params.get('search') || '',
    state: params.get('state') || '',
    tag: params.get('tag') || '',
    group: params.get('group') || '',
    sort: params.get('sort') || 'name',
    page: Number(params.get('page') || 1),
  };
  const [tags, groups] = await Promise.all([get('/tags'), get('/groups')]);
  const select = (id, label, values, current) => h('span', { class: 'field' },
    h('label', { for: id }, label),
    h('select', { id, name: id }, h('option', { value: '' }, 'any'),
      values.map((v) => h('option', { value: v, selected: v === current }, v.replaceAll('_', ' ')))));
  const search = h('input', { id: 'search', name: 'search', type: 'search', value: state.search, placeholder: 'name starts with…' });
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter hosts' },
    h('span', { class: 'field' }, h('label', { for: 'search' }, 'Search'), search),
    select('filter-state', 'State', HOST_STATES, state.state),
    select('filter-tag', 'Tag', tags.data.map((t) => t.name), state.tag),
    select('filter-group', 'Group', groups.data.map((g) => g.name), state.group),
    h('button', { type: 'submit' }, 'Apply'));
  const table = h('div', { id: 'hosts-table', 'aria-live': 'polite' });
  mount(view, h('h1', {}, 'Hosts'), form, table);

  function go(changes) {
    Object.assign(state, changes);
    const q = query({ search: state.search, state: state.state, tag: state.tag, group: state.group,
      sort: state.sort === 'name' ? '' : state.sort, page: state.page > 1 ? state.page : '' });
    location.hash = '#/hosts' + q;
  }
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    go({ search: search.value.trim(), state: form.querySelector('#filter-state').value,
      tag: form.querySelector('#filter-tag').value, group: form.querySelector('#filter-group').value, page: 1 });
  });

  let shown = new Set();
  async function draw() {
    let list;
    try {
      list = await get('/hosts' + query({ search: state.search, state: state.state, tag: state.tag,
        group: state.group, sort: state.sort, page: state.page, per_page: 50 }));
    } catch (err) {
      mount(table, errorBox(err));
      return;
    }
    shown = new Set(list.data.map((host) => host.name));
    const key = state.sort.replace(/^-/, '');
    const descending = state.sort.startsWith('-');
    const head = h('tr', {}, COLUMNS.map(([column, label]) => {
      if (!column) return h('th', { scope: 'col' }, label);
      const sorted = key === column;
      const next = sorted && !descending ? '-' + column : column;
      return h('th', { scope: 'col', 'aria-sort': sorted ? (descending ? 'descending' : 'ascending') : 'none' },
        h('button', { type: 'button', class: 'sort', onclick: () => go({ sort: next, page: 1 }) },
          label, sorted ? (descending ? ' ▼' : ' ▲') : ''));
    }));
    const rows = list.data.map((host) => h('tr', { dataset: { host: host.name } },
      h('th', { scope: 'row' }, h('a', { href: `#/hosts/${encodeURIComponent(host.name)}` }, host.name)),
      h('td', {}, [...host.tags.map((t) => h('span', { class: 'tag' }, t)), ...host.groups.map((g) => h('span', { class: 'tag group' }, g))]),
      h('td', { class: 'host-state' }, badge(host.state)),
      h('td', {}, String(host.n_pending)),
      h('td', {}, host.n_security ? h('span', { class: 'sec' }, String(host.n_security)) : '0'),
      h('td', {}, host.reboot === 'required' ? h('span', { class: 'sec' }, 'required') : host.reboot.replaceAll('_', ' ')),
      h('td', {}, when(host.last_check)),
      h('td', {}, host.current_job ? h('code', {}, host.current_job) : '—')));
    const p = list.pagination;
    const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' },
      h('button', { type: 'button', disabled: p.page <= 1, onclick: () => go({ page: p.page - 1 }) }, '← Previous'),
      h('span', { id: 'page-info' }, `Page ${p.page} of ${Math.max(1, p.total_pages)} · ${p.total_items} hosts`),
      h('button', { type: 'button', disabled: p.page >= p.total_pages, onclick: () => go({ page: p.page + 1 }) }, 'Next →'));
    mount(table,
      list.data.length ? h('div', { class: 'scroll' }, h('table', { class: 'hosts' }, h('thead', {}, head), h('tbody', {}, rows))) : h('p', { class: 'muted' }, 'No host matches.'),
      pager);
  }

  await draw();
  const redraw = debounce(() => draw(), 200);
  return live.onEvent((event) => {
    if (event.type === 'reconnected' || event.type === 'host_added' || event.type === 'host_removed') redraw();
    else if (event.host && shown.has(event.host) && event.type !== 'job_output' && event.type !== 'update_progress') redraw();
  });
}

// ---------------------------------------------------------------- one host

export async function hostPage({ view, parts, can }) {
  const name = parts.slice(1).join('/');
  const head = h('div', {});
  const actions = h('div', { class: 'actions', id: 'host-actions' });
  const details = h('div', { class: 'grid' });
  const jobsBox = h('div', {});
  const log = h('pre', { class: 'log', id: 'job-log', 'aria-live': 'polite', tabindex: 0 });
  const logTitle = h('h2', { id: 'log-title' }, 'Job output');
  const logCard = h('section', { class: 'card wide', 'aria-labelledby': 'log-title', hidden: true }, logTitle, log);
  mount(view, h('p', {}, h('a', { href: '#/hosts' }, '← Hosts')), head, actions, logCard, details,
    card('Job history', jobsBox));

  let watchedJob = null;
  async function showJob(jobId) {
    watchedJob = jobId;
    logCard.hidden = false;
    logTitle.textContent = `Job output: ${jobId}`;
    log.replaceChildren();
    try {
      const job = await get(`/jobs/${encodeURIComponent(jobId)}`);
      if (watchedJob !== jobId) return;
      for (const line of job.log) appendLine(line.stream, line.line);
    } catch (err) {
      log.append(err.message + '\n');
    }
  }
  function appendLine(stream, line) {
    log.append(h('span', { class: `line ${stream}` }, line + '\n'));
    log.scrollTop = log.scrollHeight;
  }

  async function draw() {
    let host;
    try {
      host = await get(`/hosts/${encodeURIComponent(name)}`);
    } catch (err) {
      mount(head, h('h1', {}, name), errorBox(err));
      return null;
    }
    mount(head, h('h1', {}, host.name, ' ', h('span', { id: 'host-state' }, badge(host.state))),
      h('p', { class: 'muted' }, `${host.user}@${host.addr}${host.port ? ':' + host.port : ''} · policy ${host.policy.updates}`
        + (host.policy.auto_reboot ? ' · auto reboot' : '') + ` · last check ${ago(host.last_check)}`),
      host.failure ? h('p', { class: 'error', role: 'alert' }, `Failed ${host.failure.action}: ${host.failure.error}`
        + (host.failure.acknowledged ? ' (acknowledged)' : '')) : null,
      host.last_error ? h('p', { class: 'error' }, host.last_error) : null);
    drawActions(host);
    const pending = host.pending.length
      ? h('div', { class: 'scroll' }, h('table', { id: 'pending' },
        h('thead', {}, h('tr', {}, ['Package', 'Current', 'New', 'Flags', 'Origin'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, host.pending.map((p) => h('tr', {},
          h('th', { scope: 'row' }, p.name), h('td', {}, p.current_version || '—'), h('td', {}, p.new_version),
          h('td', {}, [p.security ? h('span', { class: 'sec' }, 'security') : null,
            host.held.includes(p.name) ? h('span', { class: 'tag' }, 'held') : null,
            host.kept_back.includes(p.name) ? h('span', { class: 'tag' }, 'kept back') : null]),
          h('td', {}, p.origin))))))
      : h('p', { class: 'muted' }, 'No pending updates.');
    const listOf = (title, items) => items.length ? h('p', {}, h('strong', {}, title + ': '), items.join(', ')) : null;
    const reboot = h('p', {}, 'Reboot: ', h('strong', { id: 'reboot-state' }, host.reboot.state.replaceAll('_', ' ')),
      host.reboot.packages.length ? ` (because of ${host.reboot.packages.join(', ')})` : '');
    const inv = host.inventory;
    const inventory = inv
      ? h('dl', { class: 'facts', id: 'inventory' }, [
        ['OS', `${inv.os_name} ${inv.os_version}`], ['Kernel', inv.kernel], ['Arch', inv.arch],
        ['Package manager', inv.package_manager || '—'], ['Installed packages', inv.installed_packages],
        ['Uptime', `${Math.round(inv.uptime_seconds / 3600)} h`],
      ].map(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))]))
      : h('p', { class: 'muted' }, 'Not checked yet.');
    const cards = [
      card(`Pending updates (${host.pending.length}, ${host.n_security} security)`, pending,
        listOf('Held', host.held), listOf('Kept back', host.kept_back),
        listOf('Would be removed', host.removals.map((r) => `${r.name} ${r.version}`))),
      card('Reboot and inventory', reboot, inventory),
      card('Tags and groups', h('p', {}, [...host.tags.map((t) => h('span', { class: 'tag' }, t)), ...host.groups.map((g) => h('span', { class: 'tag group' }, g))])),
    ];
    const health = host.health || host.health_check;
    if (health) {
      cards.push(card('Health check', h('pre', { class: 'log small' }, JSON.stringify(health, null, 2))));
    }
    mount(details, ...cards);
    return host;
  }

  function drawActions(host) {
    if (!can('operate')) {
      mount(actions);
      return;
    }
    const start = (path, body) => async () => {
      const accepted = await post(`/hosts/${encodeURIComponent(name)}/${path}`, body);
      if (accepted && accepted.job_id) showJob(accepted.job_id);
      return accepted && accepted.job_id ? `started ${accepted.job_id}` : 'done';
    };
    const buttons = [
      actionButton('Check now', start('check'), { id: 'act-check' }),
      actionButton('Update all', start('update', {}), { id: 'act-update', class: 'primary' }),
    ];
    if (featureProps('updateRequest').includes('security_only')) {
      buttons.push(actionButton('Update security only', start('update', { security_only: true }), { id: 'act-update-security' }));
    }
    buttons.push(actionButton('Reboot', start('reboot', {}), { id: 'act-reboot' }));
    if (host.state === 'failed') {
      buttons.push(actionButton('Retry', start('retry'), { id: 'act-retry' }));
      if (host.failure && !host.failure.acknowledged) {
        buttons.push(actionButton('Acknowledge', start('acknowledge'), { id: 'act-ack' }));
      }
    }
    mount(actions, ...buttons);
  }

  async function drawJobs() {
    try {
      const jobs = await get(`/jobs${query({ host: name, per_page: 20 })}`);
      mount(jobsBox, jobs.data.length ? h('div', { class: 'scroll' }, h('table', { id: 'jobs' },
        h('thead', {}, h('tr', {}, ['Job', 'Kind', 'State', 'Started', 'Summary', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, jobs.data.map((job) => h('tr', { dataset: { job: job.id } },
          h('td', {}, h('code', {}, job.id)), h('td', {}, job.kind + (job.dry_run ? ' (dry run)' : '')),
          h('td', {}, badge(job.state)), h('td', {}, when(job.started_at || job.created_at)),
          h('td', {}, job.summary || ''),
          h('td', {}, h('button', { type: 'button', class: 'ghost', onclick: () => showJob(job.id) }, 'Output')))))))
        : h('p', { class: 'muted' }, 'No jobs yet.'));
    } catch (err) {
      mount(jobsBox, errorBox(err));
    }
  }

  const host = await draw();
  await drawJobs();
  if (host && host.current_job) showJob(host.current_job);
  const redraw = debounce(() => draw(), 100);
  const redrawJobs = debounce(() => drawJobs(), 100);
  return live.onEvent((event) => {
    if (event.type === 'reconnected') {
      redraw();
      redrawJobs();
      return;
    }
    if (event.host !== name) return;
    if (event.type === 'job_output') {
      if (event.job_id === watchedJob) appendLine(event.stream, event.line);
      return;
    }
    if (event.type === 'job_started' && event.job_id !== watchedJob) showJob(event.job_id);
    if (event.type === 'host_state_changed') {
      const el = document.getElementById('host-state');
      if (el) mount(el, badge(event.to));
    }
    if (event.type === 'update_progress') return;
    redraw();
    if (event.type === 'job_started' || event.type === 'job_finished') redrawJobs();
  });
}

// ---------------------------------------------------------------- audit

export async function auditPage({ view, params, can }) {
  if (!can('admin')) {
    mount(view, h('h1', {}, 'Audit'), h('p', { class: 'error', role: 'alert' }, 'The audit trail needs a token with the admin role.'));
    return null;
  }
  const page = Number(params.get('page') || 1);
  const list = await get(`/audit${query({ page, per_page: 50 })}`);
  const rows = list.data.map((row) => h('tr', {},
    h('td', {}, when(row.time)), h('td', {}, row.token || '—'), h('td', {}, row.role || '—'),
    h('td', {}, row.source), h('td', {}, h('code', {}, `${row.method} ${row.path}`)),
    h('td', {}, row.host || ''), h('td', {}, row.status === null ? '—' : String(row.status))));
  const p = list.pagination;
  mount(view, h('h1', {}, 'Audit'),
    h('div', { class: 'scroll' }, h('table', { id: 'audit' },
      h('thead', {}, h('tr', {}, ['Time', 'Token', 'Role', 'Source', 'Request', 'Host', 'Status'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows))),
    h('nav', { class: 'pager', 'aria-label': 'Pages' },
      h('a', { href: `#/audit?page=${Math.max(1, page - 1)}`, 'aria-disabled': page <= 1 ? 'true' : null }, '← Newer'),
      h('span', {}, `Page ${p.page} of ${Math.max(1, p.total_pages)} · ${p.total_items} rows`),
      h('a', { href: `#/audit?page=${page + 1}`, 'aria-disabled': page >= p.total_pages ? 'true' : null }, 'Older →')));
  return null;
}
