// rollouts.js: the rollouts list, one rollout with live per-batch and per-host progress
// (approve, cancel, resume), and the form that starts a fleet update: a dry run first shows
// the exact plan (which hosts in which batch, which packages each would upgrade), and only
// "Start this rollout" changes anything, with the same settings.

import { featureProps, get, has, post, query } from './api.js';
import { badge, debounce, h, mount, when } from './dom.js';
import * as live from './live.js';
import { actionButton, errorBox, rolloutTable } from './pages.js';

const ROLLOUT_EVENTS = new Set(['rollout_started', 'batch_started', 'batch_finished', 'rollout_finished']);

export async function rolloutsPage({ view, params, can }) {
  const table = h('div', { id: 'rollouts' });
  const page = Number(params.get('page') || 1);
  mount(view, h('h1', {}, 'Rollouts'),
    can('operate') ? h('p', {}, h('a', { href: '#/rollouts/new', class: 'button primary', id: 'new-rollout' }, 'New fleet update')) : null,
    table);
  async function draw() {
    const list = await get(`/rollouts${query({ page, per_page: 50 })}`);
    const p = list.pagination;
    mount(table, rolloutTable(list.data), h('nav', { class: 'pager', 'aria-label': 'Pages' },
      h('a', { href: `#/rollouts?page=${Math.max(1, page - 1)}` }, '← Newer'),
      h('span', {}, `Page ${p.page} of ${Math.max(1, p.total_pages)}`),
      h('a', { href: `#/rollouts?page=${page + 1}` }, 'Older →')));
  }
  await draw();
  const redraw = debounce(() => draw().catch(() => {}), 150);
  return live.onEvent((event) => {
    if (ROLLOUT_EVENTS.has(event.type) || event.type === 'reconnected') redraw();
  });
}

// The batches and hosts of a rollout, as tables.
function progress(rollout, jobs) {
  const byBatch = new Map();
  for (const host of rollout.hosts) {
    if (!byBatch.has(host.batch)) byBatch.set(host.batch, []);
    byBatch.get(host.batch).push(host);
  }
  return h('ol', { class: 'batches', id: 'batches' }, rollout.batches.map((batch) => {
    const hosts = byBatch.get(batch.index) || [];
    const done = hosts.filter((x) => !['pending', 'running'].includes(x.state)).length;
    const meter = h('progress', { max: Math.max(1, hosts.length), value: done, 'aria-label': `Batch ${batch.index + 1}: ${done} of ${hosts.length} hosts done` });
    return h('li', { class: 'card batch', dataset: { batch: batch.index, state: batch.state } },
      h('h3', {}, `Batch ${batch.index + 1}${batch.canary ? ' (canary)' : ''} `, badge(batch.state)),
      meter,
      h('table', {}, h('tbody', {}, hosts.map((host) => h('tr', { dataset: { host: host.host, state: host.state } },
        h('th', { scope: 'row' }, h('a', { href: `#/hosts/${encodeURIComponent(host.host)}` }, host.host)),
        h('td', { class: 'rollout-host-state' }, badge(host.state)),
        h('td', {}, host.reason || ''),
        h('td', {}, plan(jobs && host.job_id ? jobs.get(host.job_id) : null)))))));
  }));
}

// What a (dry-run) job found: the packages it would upgrade.
function plan(job) {
  if (!job) return '';
  if (job.dry_run) {
    if (!job.pending.length) return h('span', { class: 'muted' }, 'nothing to upgrade');
    return h('ul', { class: 'plain packages' }, job.pending.map((p) =>
      h('li', {}, h('code', {}, p.name), ` ${p.current_version || '—'} → ${p.new_version}`, p.security ? h('span', { class: 'sec' }, ' security') : '')));
  }
  if (job.packages_changed.length) {
    return h('span', { class: 'muted' }, job.packages_changed.map((p) => `${p.name} ${p.to}`).join(', '));
  }
  return h('span', { class: 'muted' }, job.summary || '');
}

async function jobsOf(rollout) {
  const ids = rollout.hosts.map((x) => x.job_id).filter(Boolean);
  const jobs = await Promise.all(ids.map((id) => get(`/jobs/${encodeURIComponent(id)}`).catch(() => null)));
  return new Map(jobs.filter(Boolean).map((job) => [job.id, job]));
}

export async function rolloutPage({ view, parts, can }) {
  const id = parts.slice(1).join('/');
  const head = h('div', {});
  const body = h('div', {});
  mount(view, h('p', {}, h('a', { href: '#/rollouts' }, '← Rollouts')), head, body);
  async function draw() {
    const rollout = await get(`/rollouts/${encodeURIComponent(id)}`);
    const finished = !['running'].includes(rollout.state);
    const jobs = finished || rollout.dry_run ? await jobsOf(rollout) : null;
    const c = rollout.counts;
    const controls = [];
    if (can('operate')) {
      if (has('/rollouts/{id}/approve') && (rollout.state === 'awaiting_approval' || rollout.state === 'waiting_approval' || rollout.awaiting_approval)) {
        controls.push(actionButton('Approve', async () => { await post(`/rollouts/${encodeURIComponent(id)}/approve`, {}); return 'approved'; }, { class: 'primary', id: 'act-approve' }));
      }
      if (rollout.state === 'running') {
        controls.push(actionButton('Cancel', async () => { await post(`/rollouts/${encodeURIComponent(id)}/cancel`, {}); return 'cancelling'; }, { id: 'act-cancel' }));
      }
      if (rollout.state === 'interrupted') {
        controls.push(actionButton('Resume', async () => { await post(`/rollouts/${encodeURIComponent(id)}/resume`, {}); return 'resumed'; }, { class: 'primary', id: 'act-resume' }));
      }
    }
    mount(head,
      h('h1', {}, `Rollout `, h('code', {}, rollout.id), ' ', h('span', { id: 'rollout-state' }, badge(rollout.state))),
      h('p', { class: 'muted' }, `${rollout.kind}${rollout.dry_run ? ' (dry run)' : ''} · batch size ${rollout.batch_size} · max failures ${rollout.max_failures} · started `, when(rollout.created_at),
        rollout.finished_at ? [' · finished ', when(rollout.finished_at)] : ''),
      h('p', { id: 'rollout-counts' }, `${c.succeeded} succeeded · ${c.failed} failed · ${c.running} running · ${c.pending} pending · ${c.skipped} skipped · ${c.cancelled} cancelled`),
      h('div', { class: 'actions' }, controls));
    mount(body, progress(rollout, jobs));
    return rollout;
  }
  await draw();
  const redraw = debounce(() => draw().catch(() => {}), 100);
  return live.onEvent((event) => {
    if (event.type === 'reconnected' || event.rollout_id === id) redraw();
    else if (event.host && ['job_started', 'job_finished', 'host_state_changed'].includes(event.type)) redraw();
  });
}

// ---------------------------------------------------------------- the form

const list = (text) => text.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);

export async function rolloutFormPage({ view, can }) {
  if (!can('operate')) {
    mount(view, h('h1', {}, 'New fleet update'), h('p', { class: 'error', role: 'alert' }, 'Starting a rollout needs a token with the operate role.'));
    return null;
  }
  const props = featureProps('fleetUpdate');
  const field = (id, label, attrs = {}, help = null) => h('div', { class: 'field' },
    h('label', { for: id }, label), h('input', { id, name: id, ...attrs }), help ? h('small', { class: 'muted' }, help) : null);
  const check = (id, label) => h('div', { class: 'field check' }, h('input', { id, name: id, type: 'checkbox' }), h('label', { for: id }, label));
  const form = h('form', { class: 'card', id: 'rollout-form', 'aria-label': 'Fleet update' },
    h('fieldset', {}, h('legend', {}, 'Which hosts'),
      field('f-tags', 'Tags (all of)', { type: 'text', placeholder: 'web, debian' }),
      field('f-groups', 'Groups (any of)', { type: 'text' }),
      field('f-hosts', 'Only these hosts', { type: 'text' }),
      field('f-exclude', 'Never these hosts', { type: 'text' })),
    h('fieldset', {}, h('legend', {}, 'How'),
      field('f-batch', 'Batch size', { type: 'number', min: 1, value: 1, required: true }),
      field('f-canary', 'Canary hosts (first, as their own batch)', { type: 'text' }),
      field('f-max-failures', 'Max failures', { type: 'text', value: '0' }, 'a count, or a percentage such as 10%'),
      field('f-delay', 'Delay between batches (ms)', { type: 'number', min: 0, value: 0 }),
      props.includes('security_only') ? check('f-security', 'Security updates only') : null,
      props.includes('approval') ? check('f-approval', 'Wait for approval after the canary batch') : null,
      props.includes('require_approval') ? check('f-require-approval', 'Wait for approval before each batch') : null,
      check('f-force', 'Also hosts outside their maintenance window')),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', id: 'dry-run' }, 'Preview (dry run)')));
  const planBox = h('div', { id: 'plan', 'aria-live': 'polite' });
  mount(view, h('p', {}, h('a', { href: '#/rollouts' }, '← Rollouts')), h('h1', {}, 'New fleet update'), form, planBox);

  const value = (id) => form.querySelector('#' + id);
  function body() {
    const maxFailures = value('f-max-failures').value.trim() || '0';
    const request = {
      batch_size: Number(value('f-batch').value || 1),
      delay_ms: Number(value('f-delay').value || 0),
      max_failures: /^\d+$/.test(maxFailures) ? Number(maxFailures) : maxFailures,
      canary: list(value('f-canary').value),
      filter: {
        tags: list(value('f-tags').value), groups: list(value('f-groups').value),
        hosts: list(value('f-hosts').value), exclude_hosts: list(value('f-exclude').value),
      },
      force: value('f-force').checked,
    };
    if (value('f-security')) request.security_only = value('f-security').checked;
    if (value('f-approval')) request.approval = value('f-approval').checked;
    if (value('f-require-approval')) request.require_approval = value('f-require-approval').checked;
    return request;
  }

  let off = () => {};
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    off();
    const request = body();
    mount(planBox, h('p', { class: 'muted' }, 'Starting the dry run…'));
    let accepted;
    try {
      accepted = await post('/fleet/update', { ...request, dry_run: true });
    } catch (err) {
      mount(planBox, errorBox(err));
      return;
    }
    const id = accepted.rollout_id;
    const status = h('p', { id: 'plan-status' }, `Dry run ${id} is asking ${accepted.hosts.length} hosts what they would upgrade…`);
    const tables = h('div', {});
    const confirm = h('div', { class: 'actions' });
    mount(planBox, h('section', { class: 'card wide', 'aria-labelledby': 'plan-title' },
      h('h2', { id: 'plan-title' }, 'The plan'), status, tables, confirm));
    const show = async () => {
      const rollout = await get(`/rollouts/${encodeURIComponent(id)}`);
      const jobs = await jobsOf(rollout);
      mount(tables, progress(rollout, jobs));
      if (rollout.state === 'running') return;
      status.textContent = `Dry run ${rollout.state}: ${accepted.hosts.length} hosts in ${accepted.batches.length} batches. Nothing has changed yet.`;
      mount(confirm,
        actionButton('Start this rollout', async () => {
          const started = await post('/fleet/update', { ...request, dry_run: false });
          location.hash = `#/rollouts/${encodeURIComponent(started.rollout_id)}`;
          return `started ${started.rollout_id}`;
        }, { class: 'primary', id: 'confirm-rollout' }),
        h('button', { type: 'button', onclick: () => mount(planBox) }, 'Discard'));
    };
    const redraw = debounce(() => show().catch((err) => mount(tables, errorBox(err))), 100);
    off = live.onEvent((event) => {
      if (event.rollout_id === id || event.type === 'reconnected' || (event.type === 'job_finished' && accepted.hosts.includes(event.host))) redraw();
    });
    await show();
  });
  return () => off();
}
