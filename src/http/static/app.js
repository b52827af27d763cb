// The sluice dashboard: a single page drawn from this server's JSON endpoints.
//
//   #/                 overview: queue per system, runner counters, machines, running
//                      steps, recent builds
//   #/builds?...       builds, newest first, filtered and paginated by the server
//                      (/api/builds: state, job, system, project, jobset, before=ID)
//   #/build/ID         a build: its steps as a graph and a table, the content-addressed
//                      resolution chain of every status-13 step, and a log panel that
//                      follows a running step live (server-sent events)
//   #/machines         machines with their slots and what runs in them
//
// Plain JavaScript, no framework, nothing loaded from elsewhere (the server's
// Content-Security-Policy allows only itself).  Every string from the server reaches
// the page as a text node, never as HTML.
'use strict';

(function () {
  // ------------------------------------------------------------------ helpers

  // Statuses and phases are shown by the names the server sends with each code
  // (buildstatusName, statusName, busyName: Hydra's words, db_status_name and
  // db_busy_name); STATUS only offers the codes of the ?status= filter.
  const STATUS = ['succeeded', 'failed', 'dependency failed', 'aborted', 'cancelled',
    'obsolete', 'failed with output', 'timed out', 'cached failure',
    'unsupported system type', 'log limit exceeded', 'output limit exceeded',
    'not deterministic', 'resolved'];
  const SVGNS = 'http://www.w3.org/2000/svg';

  // h('a', {href: '#/', class: 'x', dataset: {id: 1}, onclick: f}, 'text', child...)
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, kids);
    return el;
  }
  function s(tag, attrs, ...kids) {
    const el = document.createElementNS(SVGNS, tag);
    setAttrs(el, attrs);
    append(el, kids);
    return el;
  }
  function setAttrs(el, attrs) {
    if (!attrs) return;
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  function append(el, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === null || k === undefined || k === false) continue;
      el.appendChild(k instanceof Node ? k : document.createTextNode(String(k)));
    }
  }

  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: 'application/json' }, cache: 'no-store' });
    let body = null;
    try { body = await r.json(); } catch (e) { /* not JSON */ }
    if (!r.ok) throw new Error((body && body.error) || (r.status + ' ' + r.statusText));
    return body;
  }

  // a status code and the server's name for it
  function statusName(st, name) { return st === null || st === undefined ? 'running' : (name || 'status ' + st); }
  function statusClass(st, name) {
    if (st === null || st === undefined) return 'st-run';
    if (name === 'succeeded') return 'st-ok';
    if (name === 'resolved') return 'st-res';
    if (name === 'aborted' || name === 'cancelled' || name === 'obsolete') return 'st-warn';
    return 'st-fail';
  }
  // a status-13 row (Resolved): a redirection to the step of its resolved drv
  function isResolved(st) { return st.status !== null && st.statusName === 'resolved'; }
  function badge(text, cls, extra) { return h('span', Object.assign({ class: 'badge ' + cls }, extra || {}), text); }
  // a build row's state: queued, running, or its status
  function buildState(b) {
    if (!b.finished) return b.busysteps > 0 ? ['running', 'st-run'] : ['queued', 'st-queued'];
    return [statusName(b.buildstatus, b.buildstatusName) + (b.iscachedbuild ? ' (cached)' : ''),
      statusClass(b.buildstatus, b.buildstatusName)];
  }
  function stepState(st) {
    if (st.status === null || st.status === undefined) {
      if (st.busy) return [st.busyName || 'busy', 'st-run'];
      return ['waiting', 'st-queued'];
    }
    return [statusName(st.status, st.statusName), statusClass(st.status, st.statusName)];
  }
  function baseName(p) { return p ? p.slice(p.lastIndexOf('/') + 1) : ''; }
  // "/nix/store/<hash>-name.drv" -> "name"
  function drvName(p) {
    const b = baseName(p);
    return b.replace(/^[0-9a-z]{32}-/, '').replace(/\.drv$/, '');
  }
  function pad(n) { return n < 10 ? '0' + n : '' + n; }
  function fmtTime(t) {
    if (!t) return '';
    const d = new Date(t * 1000);
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }
  function fmtDur(sec) {
    if (sec === null || sec === undefined || sec < 0 || isNaN(sec)) return '';
    sec = Math.floor(sec);
    if (sec < 60) return sec + 's';
    if (sec < 3600) return Math.floor(sec / 60) + 'm ' + pad(sec % 60) + 's';
    if (sec < 86400) return Math.floor(sec / 3600) + 'h ' + pad(Math.floor(sec % 3600 / 60)) + 'm';
    return Math.floor(sec / 86400) + 'd ' + Math.floor(sec % 86400 / 3600) + 'h';
  }
  function now() { return Date.now() / 1000; }
  function fmtBytes(n) {
    if (n < 1024) return n + ' B';
    if (n < 1048576) return (n / 1024).toFixed(1) + ' KiB';
    return (n / 1048576).toFixed(1) + ' MiB';
  }
  function buildLink(id) { return h('a', { href: '#/build/' + id }, '#' + id); }
  function errorBox(e) { return h('p', { class: 'error', 'data-testid': 'error' }, String(e.message || e)); }
  // strip terminal colour and cursor sequences from log text
  function stripAnsi(t) { return t.replace(/\x1b\[[0-9;?]*[ -\/]*[@-~]/g, '').replace(/\x1b[()][0-9A-Za-z]/g, ''); }

  // A timer that calls fn now and every ms until the page changes.
  function every(ctx, ms, fn) {
    let stopped = false, t = null;
    const tick = async () => {
      if (stopped) return;
      try { await fn(); } catch (e) { console.error(e); }
      if (!stopped) t = setTimeout(tick, ms);
    };
    tick();
    ctx.cleanups.push(() => { stopped = true; clearTimeout(t); });
  }

  // ------------------------------------------------------------------ router

  const main = document.getElementById('main');
  let ctx = { cleanups: [] };

  function parseHash() {
    const raw = location.hash.replace(/^#/, '') || '/';
    const q = raw.indexOf('?');
    const path = q < 0 ? raw : raw.slice(0, q);
    const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
    return { path, params };
  }

  function route() {
    for (const c of ctx.cleanups) c();
    ctx = { cleanups: [] };
    const { path, params } = parseHash();
    main.replaceChildren();
    let m, nav = 'overview';
    if (path === '/' || path === '') pageOverview(ctx);
    else if (path === '/builds') { nav = params.get('state') === 'queued' ? 'queue' : 'builds'; pageBuilds(ctx, params); }
    else if (path === '/machines') { nav = 'machines'; pageMachines(ctx); }
    else if ((m = path.match(/^\/build\/(\d+)$/))) { nav = 'builds'; pageBuild(ctx, Number(m[1]), params); }
    else main.append(h('p', { class: 'error' }, 'No such page: ' + path));
    for (const a of document.querySelectorAll('header nav a')) a.classList.toggle('active', a.dataset.nav === nav);
  }
  window.addEventListener('hashchange', route);

  // the runner's state in the header
  async function headerState() {
    const el = document.getElementById('runner-state');
    try {
      const st = await getJSON('/status');
      const q = st.queueRunner || {};
      el.className = 'runner-state up';
      el.replaceChildren(h('span', { class: 'dot' }),
        'runner up ' + fmtDur(q.uptime) + ' · ' + (q.nrQueuedBuilds || 0) + ' queued · ' +
        (q.nrActiveSteps || 0) + ' running');
    } catch (e) {
      el.className = 'runner-state down';
      el.replaceChildren(h('span', { class: 'dot' }), 'unreachable: ' + e.message);
    }
  }

  // ------------------------------------------------------------------ overview

  function pageOverview(c) {
    const queueP = h('section', { class: 'panel', 'data-testid': 'queue' }, h('h2', null, 'Queue per system'));
    const runnerP = h('section', { class: 'panel' }, h('h2', null, 'Runner'));
    const machP = h('section', { class: 'panel' }, h('h2', null, 'Machines', h('a', { class: 'aside', href: '#/machines' }, 'details →')));
    const runP = h('section', { class: 'panel', 'data-testid': 'running' }, h('h2', null, 'Running steps'));
    const recentP = h('section', { class: 'panel' }, h('h2', null, 'Recent builds', h('a', { class: 'aside', href: '#/builds' }, 'all builds →')));
    main.append(h('div', { class: 'grid' }, h('div', null, queueP, runnerP), h('div', null, machP, runP)), recentP);
    const body = (p) => { let b = p.querySelector('.body'); if (!b) { b = h('div', { class: 'body' }); p.append(b); } return b; };

    every(c, 2000, async () => {
      const [queue, machines, recent] = await Promise.all([
        getJSON('/api/queue'), getJSON('/status/machines'), getJSON('/api/builds?limit=12')]);
      // queue
      const systems = Object.keys(queue.systems).sort();
      body(queueP).replaceChildren(systems.length === 0 ? h('p', { class: 'muted' }, 'Nothing queued.') :
        h('table', null,
          h('thead', null, h('tr', null, h('th', null, 'System'), h('th', { class: 'num' }, 'Queued builds'),
            h('th', { class: 'num' }, 'Runnable steps'), h('th', { class: 'num' }, 'Running steps'))),
          h('tbody', null, systems.map((sys) => {
            const q = queue.systems[sys];
            return h('tr', { 'data-testid': 'queue-row', 'data-system': sys },
              h('td', null, h('code', null, sys)),
              h('td', { class: 'num' }, h('a', { href: '#/builds?state=queued&system=' + encodeURIComponent(sys) }, q.queuedBuilds)),
              h('td', { class: 'num' }, q.runnableSteps), h('td', { class: 'num' }, q.runningSteps));
          }))));
      // runner counters
      const r = queue.runner;
      body(runnerP).replaceChildren(!r ? h('p', { class: 'muted' }, 'No runner.') : h('div', { class: 'stats' },
        [['queued builds', queue.queuedBuilds], ['unfinished steps', r.nrUnfinishedSteps],
          ['runnable', r.nrRunnableSteps], ['running', r.nrActiveSteps], ['waiting', r.nrStepsWaiting],
          ['retry wait', r.nrStepsRetryWaiting], ['builds done', r.nrBuildsDone],
          ['succeeded', r.nrBuildsSucceeded], ['failed', r.nrBuildsFailed],
          ['CA resolutions', r.nrResolutions], ['steps done', r.nrStepsDone], ['uptime', fmtDur(r.uptime)]]
          .map(([k, v]) => h('div', { class: 'stat' }, h('div', { class: 'v' }, v === undefined ? '–' : v), h('div', { class: 'k' }, k)))));
      // machines, compact
      const names = Object.keys(machines.machines || {}).sort();
      const running = [];
      body(machP).replaceChildren(h('table', null,
        h('thead', null, h('tr', null, h('th', null, 'Machine'), h('th', null, 'Slots'), h('th', null, 'State'))),
        h('tbody', null, names.map((n) => {
          const m = machines.machines[n];
          for (const st of m.currentSteps || []) running.push(Object.assign({ machine: n }, st));
          const pct = m.maxJobs ? Math.round(100 * m.currentJobs / m.maxJobs) : 0;
          const bar = h('span', { class: 'bar' }, h('span'));
          bar.firstChild.style.width = pct + '%';
          return h('tr', null, h('td', null, h('code', null, n)),
            h('td', null, bar, m.currentJobs + ' / ' + m.maxJobs),
            h('td', null, m.enabled ? badge('enabled', 'st-ok') : badge('disabled', 'st-fail', { title: m.disabledReason || '' })));
        }))));
      // running steps
      body(runP).replaceChildren(running.length === 0 ? h('p', { class: 'muted' }, 'Nothing is running.') :
        h('table', null,
          h('thead', null, h('tr', null, h('th', null, 'Build'), h('th', null, 'Step'), h('th', null, 'Derivation'),
            h('th', null, 'Machine'), h('th', null, 'Phase'), h('th', { class: 'num' }, 'Elapsed'))),
          h('tbody', null, running.map((st) => h('tr', null, h('td', null, buildLink(st.build)),
            h('td', null, h('a', { href: '#/build/' + st.build + '?step=' + st.stepnr }, st.stepnr)),
            h('td', { title: st.drvPath }, drvName(st.drvPath)), h('td', null, h('code', null, st.machine)),
            h('td', null, badge(st.phase, 'st-run')), h('td', { class: 'num' }, fmtDur(st.elapsed)))))));
      // recent builds
      body(recentP).replaceChildren(buildsTable(recent.builds));
    });
  }

  // ------------------------------------------------------------------ builds

  function buildsTable(rows) {
    if (!rows.length) return h('p', { class: 'muted', 'data-testid': 'no-builds' }, 'No builds.');
    return h('table', { 'data-testid': 'builds' },
      h('thead', null, h('tr', null, h('th', null, 'Build'), h('th', null, 'State'), h('th', null, 'Project:jobset'),
        h('th', null, 'Job'), h('th', null, 'System'), h('th', null, 'Queued'), h('th', null, 'Finished'),
        h('th', { class: 'num' }, 'Duration'), h('th', { class: 'num' }, 'Priority'))),
      h('tbody', null, rows.map((b) => {
        const [st, cls] = buildState(b);
        const dur = b.starttime ? (b.stoptime || now()) - b.starttime : null;
        return h('tr', { 'data-testid': 'build-row', 'data-id': b.id, 'data-state': st },
          h('td', null, buildLink(b.id)), h('td', null, badge(st, cls)),
          h('td', null, (b.project || '') + ':' + (b.jobset || '')),
          h('td', { title: b.nixname || '' }, b.job), h('td', null, h('code', null, b.system)),
          h('td', null, fmtTime(b.timestamp)), h('td', null, fmtTime(b.stoptime)),
          h('td', { class: 'num' }, b.finished || b.busysteps ? fmtDur(dur) : ''),
          h('td', { class: 'num' }, b.globalpriority ? b.priority + ' / ' + b.globalpriority : b.priority));
      })));
  }

  const STATES = [['', 'any'], ['queued', 'queued'], ['running', 'running'], ['finished', 'finished']]
    .concat(STATUS.map((n, i) => ['s' + i, n]).filter(([, n]) => n !== 'resolved'));

  function pageBuilds(c, params) {
    const state = params.get('state') || '';
    const limit = params.get('limit') || '50';
    const field = (name, label, size) => h('label', null, label,
      h('input', { name, value: params.get(name) || '', size: size || 14, 'data-testid': 'filter-' + name }));
    const sel = h('select', { name: 'state', 'data-testid': 'filter-state' },
      STATES.map(([v, n]) => h('option', { value: v, selected: v === state }, n)));
    const lim = h('select', { name: 'limit' }, ['25', '50', '100', '200'].map((v) => h('option', { value: v, selected: v === limit }, v)));
    const form = h('form', { class: 'filters', 'data-testid': 'filters' },
      h('label', null, 'State', sel), field('job', 'Job contains'), field('system', 'System'),
      field('project', 'Project'), field('jobset', 'Jobset'), h('label', null, 'Per page', lim),
      h('button', { class: 'primary', type: 'submit' }, 'Filter'),
      h('button', { type: 'button', onclick: () => { location.hash = '#/builds'; } }, 'Clear'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const p = new URLSearchParams();
      for (const el of form.elements) if (el.name && el.value) p.set(el.name, el.value);
      location.hash = '#/builds' + (p.toString() ? '?' + p : '');
    });
    const list = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
    const title = state === 'queued' ? 'Queued builds' : 'Builds';
    main.append(h('h1', null, title), h('section', { class: 'panel' }, form, list));

    // the query for /api/builds
    const q = new URLSearchParams();
    if (state === 'queued') q.set('finished', '0');
    else if (state === 'running') q.set('running', '1');
    else if (state === 'finished') q.set('finished', '1');
    else if (/^s\d+$/.test(state)) q.set('status', state.slice(1));
    for (const k of ['job', 'system', 'project', 'jobset', 'limit', 'before']) if (params.get(k)) q.set(k, params.get(k));
    const before = params.get('before');
    const refresh = async () => {
      let res;
      try { res = await getJSON('/api/builds?' + q); } catch (e) { list.replaceChildren(errorBox(e)); return; }
      const to = (b) => { const p = new URLSearchParams(params); if (b) p.set('before', b); else p.delete('before'); return '#/builds?' + p; };
      list.replaceChildren(buildsTable(res.builds),
        h('div', { class: 'pager' },
          h('button', { type: 'button', disabled: !before, 'data-testid': 'first-page', onclick: () => { location.hash = to(null); } }, '« Newest'),
          h('button', { type: 'button', disabled: !before, onclick: () => history.back() }, '‹ Newer'),
          h('button', { type: 'button', disabled: res.next === null, 'data-testid': 'next-page', onclick: () => { location.hash = to(res.next); } }, 'Older ›'),
          h('span', { class: 'muted' }, res.builds.length ? 'builds #' + res.builds[0].id + ' – #' + res.builds[res.builds.length - 1].id : '')));
    };
    // the first page follows the queue; older pages stay as they are
    if (before) refresh(); else every(c, 5000, refresh);
  }

  // ------------------------------------------------------------------ one build

  // ------------------------------------------------------------------ admin actions
  // The admin token is kept in this tab's session storage only and sent as a bearer
  // token with each POST; the server checks it (http-admin-token).
  const TOKEN_KEY = 'sluice-admin-token';
  function adminToken() { try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; } }
  async function adminPost(url) {
    const r = await fetch(url, { method: 'POST', headers: { Authorization: 'Bearer ' + adminToken() }, cache: 'no-store' });
    const t = await r.text();
    let j = null;
    try { j = JSON.parse(t); } catch (e) { /* not JSON */ }
    if (!r.ok) throw new Error((j && j.error) || t || ('HTTP ' + r.status));
    return j;
  }

  // Restart / cancel / bump the build, clear the cached failure of a failed step; a
  // token form when this tab has none.  Redrawn only when what it offers changes.
  function actionsPanel(id) {
    const panel = h('section', { class: 'panel actions', 'data-testid': 'actions' });
    const msg = h('span', { class: 'muted', 'data-testid': 'action-result' });
    let key = null;
    const act = (label, url, testid) => h('button', {
      type: 'button', 'data-testid': testid,
      onclick: async () => {
        msg.textContent = label + '…';
        try { await adminPost(url); msg.textContent = label + ': done'; } catch (e) { msg.textContent = label + ': ' + e.message; }
      },
    }, label);
    return {
      el: panel,
      update(b) {
        const tok = adminToken();
        const failed = b.steps.filter((x) => x.statusName === 'failed' || x.statusName === 'cached failure');
        const k = [!!tok, b.finished, failed.map((x) => x.stepnr).join(',')].join('|');
        if (k === key) return;
        key = k;
        if (!tok) {
          const input = h('input', { type: 'password', placeholder: 'admin token', autocomplete: 'off', 'data-testid': 'admin-token' });
          const form = h('form', { class: 'filters' }, input, h('button', { type: 'submit', 'data-testid': 'admin-token-save' }, 'Use token'));
          form.addEventListener('submit', (ev) => {
            ev.preventDefault();
            if (input.value) sessionStorage.setItem(TOKEN_KEY, input.value);
            key = null;
            this.update(b);
          });
          panel.replaceChildren(h('h2', null, 'Actions'), h('p', { class: 'muted' },
            'Enter the admin token (http-admin-token) to restart, cancel or bump builds; it is kept in this tab only.'), form);
          return;
        }
        const buttons = b.finished ? [act('Restart', '/build/' + id + '/restart', 'action-restart')]
          : [act('Cancel', '/build/' + id + '/cancel', 'action-cancel'), act('Bump', '/build/' + id + '/bump', 'action-bump')];
        for (const st of failed) buttons.push(act('Clear cached failure of step ' + st.stepnr, '/build/' + id + '/step/' + st.stepnr + '/clear-failed', 'action-clear-' + st.stepnr));
        const forget = h('button', { type: 'button', class: 'link', onclick: () => { sessionStorage.removeItem(TOKEN_KEY); key = null; this.update(b); } }, 'forget token');
        panel.replaceChildren(h('h2', null, 'Actions'), h('div', { class: 'buttons' }, ...buttons, forget), msg);
      },
    };
  }

  function pageBuild(c, id, params) {
    const head = h('div');
    const actions = actionsPanel(id);
    const caP = h('section', { class: 'panel', 'data-testid': 'ca-panel' }, h('h2', null, 'Content-addressed resolution'));
    const graphP = h('section', { class: 'panel' }, h('h2', null, 'Steps'));
    const logP = h('section', { class: 'panel', 'data-testid': 'log-panel' }, h('h2', null, 'Log'));
    caP.hidden = true;
    main.append(head, actions.el, caP, graphP, logP);
    const graphWrap = h('div', { class: 'graph-wrap', 'data-testid': 'graph' });
    const legend = h('div', { class: 'legend' }, h('span', null, h('i'), 'input derivation'),
      h('span', null, h('i', { class: 'output' }), 'input path built by the step'),
      h('span', null, h('i', { class: 'resolved' }), 'resolved to'));
    const stepsBox = h('div');
    graphP.append(legend, graphWrap, stepsBox);
    const otherBuilds = new Map(); // build id -> build JSON (terminal steps in other builds)
    const state = { selected: params.get('step') ? Number(params.get('step')) : null, auto: !params.get('step'), build: null, graphKey: '' };
    const log = logPanel(c, logP);

    const select = (nr, auto) => {
      state.selected = nr;
      state.auto = !!auto;
      showLog();
      markSelected();
    };
    const markSelected = () => {
      for (const el of main.querySelectorAll('[data-stepnr]')) el.classList.toggle('selected', Number(el.dataset.stepnr) === state.selected && !el.dataset.build);
    };
    const showLog = () => {
      const b = state.build;
      if (!b) return;
      const st = b.steps.find((x) => x.stepnr === state.selected);
      if (!st) { log.show(null); return; }
      log.show({ build: id, step: st });
    };

    every(c, 2000, async () => {
      let b;
      try { b = await getJSON('/build/' + id); } catch (e) { head.replaceChildren(errorBox(e)); return; }
      state.build = b;
      renderHead(head, b);
      actions.update(b);
      // terminal steps in other builds: their outputs
      for (const st of b.steps) {
        const t = st.terminal;
        if (t && !t.sameBuild && (!otherBuilds.has(t.buildId) || otherBuilds.get(t.buildId).finished === false)) {
          try { otherBuilds.set(t.buildId, await getJSON('/build/' + t.buildId)); } catch (e) { /* shown without outputs */ }
        }
      }
      renderChains(caP, b, otherBuilds);
      renderSteps(stepsBox, b, (nr) => select(nr, false));
      // the graph changes with the steps' states
      const key = b.steps.map((x) => x.stepnr + ':' + x.status + ':' + x.busy).join(',');
      if (key !== state.graphKey) {
        state.graphKey = key;
        try {
          const g = await getJSON('/api/build/' + id + '/graph');
          renderGraph(graphWrap, g, b, (nr) => select(nr, false));
        } catch (e) { graphWrap.replaceChildren(errorBox(e)); }
      }
      // by default follow the running step (the resolved drv's step first), else the last one
      if (state.auto) {
        const running = b.steps.filter((x) => x.status === null && x.busy);
        const pick = running.length ? running[running.length - 1]
          : b.steps.filter((x) => x.log).slice(-1)[0];
        if (pick && pick.stepnr !== state.selected) select(pick.stepnr, true);
      }
      if (state.selected !== null && !log.current()) showLog();
      markSelected();
      log.update(b.steps.find((x) => x.stepnr === state.selected));
    });
  }

  function renderHead(head, b) {
    const [st, cls] = b.finished ? buildState(b)
      : (b.steps.some((x) => x.status === null && x.busy) ? ['running', 'st-run'] : ['queued', 'st-queued']);
    const outs = Object.entries(b.buildoutputs || {});
    head.replaceChildren(
      h('h1', null, 'Build ' + b.id, badge(st, cls, { 'data-testid': 'build-state' }), h('span', { class: 'muted' }, b.job)),
      h('section', { class: 'panel' }, h('dl', { class: 'meta' },
        h('dt', null, 'Project:jobset'), h('dd', null, (b.project || '') + ':' + (b.jobset || '')),
        h('dt', null, 'Job'), h('dd', null, b.job + (b.nixname ? ' (' + b.nixname + ')' : '')),
        h('dt', null, 'System'), h('dd', null, h('code', null, b.system)),
        h('dt', null, 'Derivation'), h('dd', null, h('code', null, b.drvpath)),
        h('dt', null, 'Queued'), h('dd', null, fmtTime(b.timestamp)),
        b.starttime ? [h('dt', null, 'Started'), h('dd', null, fmtTime(b.starttime))] : null,
        b.stoptime ? [h('dt', null, 'Finished'), h('dd', null, fmtTime(b.stoptime) + ' (' + fmtDur(b.stoptime - b.starttime) + ')')] : null,
        h('dt', null, 'Priority'), h('dd', null, b.priority + (b.globalpriority ? ', global ' + b.globalpriority : '')),
        h('dt', null, 'Outputs'), h('dd', null, outs.length ? outs.map(([n, o]) => h('div', null, n + ': ', h('code', null, o.path || '(not yet known)'))) : '–'),
        h('dt', null, 'Raw'), h('dd', null, h('a', { href: '/build/' + b.id }, 'JSON'), ' · ', h('a', { href: '/build/' + b.id + '/log' }, 'build log')))));
  }

  // P -> Resolved (status 13) -> P' -> the step building P' -> its outputs
  function renderChains(panel, b, otherBuilds) {
    const rows = b.steps.filter(isResolved);
    panel.hidden = rows.length === 0;
    let box = panel.querySelector('.body');
    if (!box) { box = h('div', { class: 'body' }); panel.append(box); }
    box.replaceChildren(...rows.map((st) => {
      const t = st.terminal;
      const dir = st.drvpath.slice(0, st.drvpath.lastIndexOf('/') + 1);
      let outputs = null, tstep = null;
      if (t) {
        const tb = t.sameBuild ? b : otherBuilds.get(t.buildId);
        tstep = tb && tb.steps ? tb.steps.find((x) => x.stepnr === t.stepnr) : null;
        outputs = tstep ? tstep.outputs : null;
      }
      const tState = t ? stepState(t) : null;
      return h('div', { class: 'chain', 'data-testid': 'ca-chain', 'data-stepnr': st.stepnr,
        'data-terminal-build': t ? t.buildId : '', 'data-terminal-step': t ? t.stepnr : '' },
        h('div', { class: 'link drv' }, h('div', { class: 'k' }, 'derivation P · step ' + st.stepnr),
          h('div', { class: 'mono', title: st.drvpath }, baseName(st.drvpath))),
        h('span', { class: 'arrow' }, '→'),
        h('div', { class: 'link resolved' }, h('div', { class: 'k' }, 'status 13'), badge('Resolved', 'st-res', { 'data-testid': 'resolved-badge' })),
        h('span', { class: 'arrow' }, '→'),
        h('div', { class: 'link drv' }, h('div', { class: 'k' }, 'resolved derivation P′'),
          h('div', { class: 'mono', title: dir + st.resolveddrvpath }, st.resolveddrvpath)),
        h('span', { class: 'arrow' }, '→'),
        t ? h('div', { class: 'link', 'data-testid': 'ca-terminal' }, h('div', { class: 'k' }, 'its step'),
          h('div', null, h('a', { href: '#/build/' + t.buildId + '?step=' + t.stepnr },
            (t.sameBuild ? '' : 'build #' + t.buildId + ' ') + 'step ' + t.stepnr), ' ', badge(tState[0], tState[1])))
          : h('div', { class: 'link' }, h('div', { class: 'k' }, 'its step'), h('span', { class: 'muted' }, 'not started')),
        h('span', { class: 'arrow' }, '→'),
        h('div', { class: 'link drv', 'data-testid': 'ca-outputs' }, h('div', { class: 'k' }, 'outputs'),
          outputs && Object.keys(outputs).length ? Object.entries(outputs).map(([n, p]) =>
            h('div', { class: 'mono' }, n + ': ' + (p ? baseName(p) : '(pending)'))) : h('span', { class: 'muted' }, 'not yet built')));
    }));
  }

  function renderSteps(box, b, onSelect) {
    box.replaceChildren(h('table', { 'data-testid': 'steps' },
      h('thead', null, h('tr', null, h('th', { class: 'num' }, '#'), h('th', null, 'Derivation'), h('th', null, 'State'),
        h('th', null, 'Machine'), h('th', null, 'Started'), h('th', { class: 'num' }, 'Duration'), h('th', null, 'Log'))),
      h('tbody', null, b.steps.map((st) => {
        const [name, cls] = stepState(st);
        const dur = st.starttime ? (st.stoptime || now()) - st.starttime : null;
        let note = null;
        if (isResolved(st)) note = h('div', { class: 'muted' }, 'resolved to ', h('code', null, st.resolveddrvpath));
        else if (st.errormsg) note = h('div', { class: 'error' }, st.errormsg);
        else if (st.propagatedfrom) note = h('div', { class: 'muted' }, 'propagated from ', buildLink(st.propagatedfrom));
        return h('tr', { 'data-testid': 'step-row', 'data-stepnr': st.stepnr, 'data-status': st.status === null ? '' : st.status, 'data-busy': st.busy },
          h('td', { class: 'num' }, st.stepnr),
          h('td', { title: st.drvpath }, drvName(st.drvpath), note),
          h('td', null, badge(name, cls)),
          h('td', null, st.machine ? h('code', null, st.machine) : (st.starttime && !isResolved(st) && !st.propagatedfrom ? h('code', null, 'local') : '')),
          h('td', null, fmtTime(st.starttime)), h('td', { class: 'num' }, st.starttime ? fmtDur(dur) : ''),
          h('td', null, st.log ? [h('a', { href: '#', onclick: (ev) => { ev.preventDefault(); onSelect(st.stepnr); } }, st.status === null ? 'tail' : 'show'),
            ' · ', h('a', { href: st.log, target: '_blank', rel: 'noopener' }, 'raw')]
            : (st.terminal ? h('a', { href: '#/build/' + st.terminal.buildId + '?step=' + st.terminal.stepnr }, '→ step ' + st.terminal.stepnr) : '')));
      }))));
  }

  // ------------------------------------------------------------------ step graph

  // Layered drawing: a node's column is the longest path from a node without inputs;
  // within a column nodes are ordered by the mean row of their predecessors.
  function renderGraph(wrap, g, b, onSelect) {
    const nodes = new Map();
    for (const n of g.nodes) nodes.set(n.stepnr, Object.assign({ id: 's' + n.stepnr, preds: [], succs: [] }, n));
    const edges = g.edges.map((e) => ({ from: 's' + e.from, to: 's' + e.to, kind: e.kind }));
    // status-13 rows whose resolved drv is built in another build: an extra node
    for (const st of b.steps) {
      const t = st.terminal;
      if (t && !t.sameBuild && nodes.has(st.stepnr)) {
        const id = 'b' + t.buildId + 's' + t.stepnr;
        if (!nodes.has(id)) nodes.set(id, { id, external: true, buildId: t.buildId, stepnr: t.stepnr, drvpath: t.drvPath, status: t.status, statusName: t.statusName, busy: t.busy, busyName: t.busyName, preds: [], succs: [] });
        edges.push({ from: 's' + st.stepnr, to: id, kind: 'resolved' });
      }
    }
    const byId = new Map([...nodes.values()].map((n) => [n.id, n]));
    const E = edges.filter((e) => byId.has(e.from) && byId.has(e.to));
    for (const e of E) { byId.get(e.from).succs.push(e.to); byId.get(e.to).preds.push(e.from); }
    const layer = new Map();
    const depth = (id, seen) => {
      if (layer.has(id)) return layer.get(id);
      if (seen.has(id)) return 0; // a cycle cannot happen; do not loop if it does
      seen.add(id);
      let d = 0;
      for (const p of byId.get(id).preds) d = Math.max(d, depth(p, seen) + 1);
      layer.set(id, d);
      return d;
    };
    for (const id of byId.keys()) depth(id, new Set());
    const cols = [];
    for (const [id, d] of layer) (cols[d] = cols[d] || []).push(byId.get(id));
    const row = new Map();
    cols.forEach((col, ci) => {
      const key = (n) => {
        if (ci === 0 || !n.preds.length) return n.stepnr;
        return n.preds.reduce((a, p) => a + (row.get(p) || 0), 0) / n.preds.length;
      };
      col.sort((x, y) => key(x) - key(y) || x.stepnr - y.stepnr);
      col.forEach((n, i) => row.set(n.id, i));
    });
    const W = 230, H = 46, GX = 70, GY = 30, PAD = 12, DIP = 40;
    const maxRows = Math.max(1, ...cols.map((c) => c.length));
    const width = PAD * 2 + cols.length * W + (cols.length - 1) * GX;
    const height = PAD * 2 + maxRows * H + (maxRows - 1) * GY + DIP / 2;
    const pos = (n) => ({ x: PAD + layer.get(n.id) * (W + GX), y: PAD + row.get(n.id) * (H + GY) });
    const svg = s('svg', { class: 'graph', width, height, viewBox: '0 0 ' + width + ' ' + height, 'data-testid': 'graph-svg' });
    for (const e of E) {
      const a = pos(byId.get(e.from)), z = pos(byId.get(e.to));
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = z.x, y2 = z.y + H / 2, mx = (x1 + x2) / 2;
      // an edge over more than one column passes under the nodes between
      const long = layer.get(e.to) - layer.get(e.from) > 1;
      const d = long ? `M${x1},${y1} C${x1 + GX},${y1 + H / 2 + DIP} ${x2 - GX},${y2 + H / 2 + DIP} ${x2},${y2}`
        : `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`;
      svg.append(s('path', { class: 'edge ' + e.kind, d, 'data-kind': e.kind },
        s('title', null, e.kind === 'resolved' ? 'resolved to' : e.kind === 'output' ? 'uses an output of' : 'input of')));
    }
    for (const n of byId.values()) {
      const p = pos(n);
      const [name, cls] = stepState(n);
      const label = (n.external ? 'build ' + n.buildId + ' · ' : '') + '#' + n.stepnr + ' ' + drvName(n.drvpath);
      const attrs = { class: 'node ' + cls + (n.external ? ' external' : ''), transform: `translate(${p.x},${p.y})`,
        'data-testid': 'graph-node', 'data-stepnr': n.stepnr, 'data-status': n.status === null || n.status === undefined ? '' : n.status };
      if (n.external) attrs['data-build'] = n.buildId;
      const gEl = s('g', attrs,
        s('title', null, n.drvpath + (n.machine ? ' on ' + n.machine : '')),
        s('rect', { width: W, height: H, rx: 5, ry: 5 }),
        s('text', { x: 10, y: 19 }, label.length > 32 ? label.slice(0, 31) + '…' : label),
        s('text', { x: 10, y: 36, class: 'sub' }, name + (isResolved(n) ? ' → P′' : '')));
      gEl.addEventListener('click', () => {
        if (n.external) location.hash = '#/build/' + n.buildId + '?step=' + n.stepnr; else onSelect(n.stepnr);
      });
      svg.append(gEl);
    }
    wrap.replaceChildren(svg);
    if (g.truncated) wrap.append(h('p', { class: 'muted' }, 'This build has more steps than the graph shows; the table lists them all.'));
  }

  // ------------------------------------------------------------------ log panel

  // Shows one step's log: live through /build/ID/step/N/log/stream while the step
  // runs (the server sends the last 64 KiB first, then new bytes as they are flushed),
  // the last 1000 lines once it is done.
  function logPanel(c, panel) {
    const title = h('span', { 'data-testid': 'log-title' }, 'No step selected.');
    const stateEl = h('span', { class: 'badge st-queued', 'data-testid': 'log-state' }, 'idle');
    const size = h('span', { class: 'muted', 'data-testid': 'log-size' });
    const raw = h('a', { target: '_blank', rel: 'noopener' }, 'full log');
    const pre = h('pre', { class: 'log', id: 'log', 'data-testid': 'log' });
    panel.append(h('div', { class: 'log-head' }, title, stateEl, size, raw), pre);
    const MAX_CHARS = 2000000; // keep the page light: drop the oldest text beyond this
    let es = null, cur = null, bytes = 0, gen = 0;
    const setState = (text, cls) => { stateEl.textContent = text; stateEl.className = 'badge ' + cls; };
    const stop = () => { if (es) { es.close(); es = null; } };
    c.cleanups.push(stop);
    const atBottom = () => pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
    let chars = 0;
    const add = (text) => {
      const stick = atBottom();
      const t = stripAnsi(text);
      pre.append(document.createTextNode(t));
      chars += t.length;
      if (chars > MAX_CHARS) {
        const all = pre.textContent;
        const keep = all.slice(all.length - MAX_CHARS / 2);
        pre.replaceChildren(h('span', { class: 'skipped' }, '… earlier output dropped from the page …\n'), keep);
        chars = keep.length;
      }
      if (stick) pre.scrollTop = pre.scrollHeight;
    };
    const live = (ref) => {
      const url = '/build/' + ref.build + '/step/' + ref.step.stepnr + '/log/stream';
      const my = gen;
      es = new EventSource(url);
      setState('connecting', 'st-queued');
      es.addEventListener('open', () => { if (my === gen) setState('live', 'st-run'); });
      es.addEventListener('log', (ev) => {
        if (my !== gen) return;
        const d = JSON.parse(ev.data);
        if (bytes === 0 && d.offset > 0) pre.append(h('span', { class: 'skipped' }, '… ' + fmtBytes(d.offset) + ' before this; see the full log …\n'));
        bytes = d.offset + new TextEncoder().encode(d.text).length;
        size.textContent = fmtBytes(bytes);
        pre.dataset.bytes = String(bytes);
        add(d.text);
        setState('live', 'st-run');
      });
      es.addEventListener('reset', () => { if (my === gen) { pre.replaceChildren(); bytes = 0; chars = 0; } });
      es.addEventListener('end', (ev) => {
        if (my !== gen) return;
        const d = JSON.parse(ev.data);
        stop();
        setState('ended: ' + statusName(d.status, d.statusName), statusClass(d.status, d.statusName));
      });
      es.addEventListener('fault', (ev) => {
        if (my !== gen) return;
        stop();
        add('\n' + JSON.parse(ev.data).error + '\n');
        setState('log unreadable', 'st-fail');
      });
      es.addEventListener('error', () => {
        // the browser reconnects on its own (resuming at the last event); a step
        // without a log stream (404) ends here
        if (my === gen && es && es.readyState === EventSource.CLOSED) { setState('no stream', 'st-fail'); stop(); }
      });
    };
    const finished = async (ref) => {
      const my = gen;
      setState('loading', 'st-queued');
      try {
        const r = await fetch('/build/' + ref.build + '/step/' + ref.step.stepnr + '/log?tail=1000', { cache: 'no-store' });
        const t = await r.text();
        if (my !== gen) return;
        pre.replaceChildren();
        chars = 0;
        if (!r.ok) { add(JSON.parse(t).error || t); setState('no log', 'st-queued'); return; }
        if (t === '') add('The log of this step is empty.');
        else add(t);
        size.textContent = t === '' ? '' : 'last 1000 lines';
        pre.scrollTop = pre.scrollHeight;
        const [n, cls] = stepState(ref.step);
        setState(n, cls);
      } catch (e) { if (my === gen) setState('error', 'st-fail'); }
    };
    return {
      current: () => cur,
      show(ref) {
        stop();
        gen++;
        cur = ref;
        bytes = 0;
        chars = 0;
        pre.replaceChildren();
        size.textContent = '';
        delete pre.dataset.bytes;
        if (!ref) { title.textContent = 'No step selected.'; setState('idle', 'st-queued'); return; }
        const st = ref.step;
        title.replaceChildren('Step ' + st.stepnr + ' · ', h('code', { title: st.drvpath }, drvName(st.drvpath)));
        title.dataset.stepnr = String(st.stepnr);
        raw.href = '/build/' + ref.build + '/step/' + st.stepnr + '/log';
        if (isResolved(st)) {
          add('A resolution has no log of its own: the log is that of the step building ' + st.resolveddrvpath + '.\n');
          setState('resolved', 'st-res');
        } else if (st.status === null && st.busy) live(ref);
        else if (st.status === null) { add('The step has not started.\n'); setState('waiting', 'st-queued'); }
        else finished(ref);
      },
      // the step's row changed (it started or finished)
      update(st) {
        if (!cur || !st || st.stepnr !== cur.step.stepnr) return;
        const was = cur.step;
        cur.step = st;
        if (was.status === null && !was.busy && st.busy) this.show(cur);
        else if (was.status === null && st.status !== null && !es) finished(cur);
      },
    };
  }

  // ------------------------------------------------------------------ machines

  function pageMachines(c) {
    const box = h('div', { class: 'machines', 'data-testid': 'machines' });
    main.append(h('h1', null, 'Machines'), box);
    let fetched = 0, data = null;
    const draw = () => {
      if (!data) return;
      const since = now() - fetched;
      const names = Object.keys(data.machines || {}).sort();
      if (!names.length) { box.replaceChildren(h('p', { class: 'muted' }, 'No machines.')); return; }
      box.replaceChildren(...names.map((n) => {
        const m = data.machines[n];
        const slots = [];
        const steps = m.currentSteps || [];
        for (let i = 0; i < Math.max(m.maxJobs, steps.length); i++) {
          const st = steps[i];
          slots.push(st ? h('div', { class: 'slot busy', 'data-testid': 'slot', 'data-build': st.build, 'data-stepnr': st.stepnr, 'data-phase': st.phase },
            h('div', { class: 'slot-head' }, h('a', { href: '#/build/' + st.build + '?step=' + st.stepnr }, 'build #' + st.build + ' · step ' + st.stepnr),
              h('span', { class: 'elapsed', title: 'elapsed' }, fmtDur(st.elapsed + since))),
            h('div', { title: st.drvPath }, drvName(st.drvPath)),
            h('div', { class: 'phase' }, st.phase))
            : h('div', { class: 'slot', 'data-testid': 'slot-free' }, 'slot ' + (i + 1) + ': free'));
        }
        const until = m.disabledUntil ? fmtTime(m.disabledUntil) : '';
        return h('div', { class: 'machine' + (m.enabled ? '' : ' disabled'), 'data-testid': 'machine', 'data-name': n },
          h('div', { class: 'log-head' }, h('span', { class: 'name' }, n),
            m.enabled ? badge('enabled', 'st-ok') : badge('disabled until ' + until, 'st-fail', { 'data-testid': 'disabled' }),
            h('span', { class: 'muted' }, (m.currentJobs || 0) + ' / ' + m.maxJobs + ' slots used')),
          m.enabled ? null : h('div', { class: 'why', 'data-testid': 'disabled-reason' }, m.disabledReason || 'backed off after failures'),
          h('div', { class: 'kv' },
            h('span', null, 'systems ', h('b', null, (m.systems || []).join(', '))),
            h('span', null, 'speed ', h('b', null, m.speedFactor)),
            (m.supportedFeatures || []).length ? h('span', null, 'features ', h('b', null, m.supportedFeatures.join(', '))) : null,
            (m.mandatoryFeatures || []).length ? h('span', null, 'mandatory ', h('b', null, m.mandatoryFeatures.join(', '))) : null),
          h('div', { class: 'slots' }, slots),
          h('div', { class: 'kv' },
            h('span', null, 'steps done ', h('b', null, m.nrStepsDone || 0)),
            h('span', null, 'failed ', h('b', null, m.nrStepsFailed || 0)),
            h('span', null, 'consecutive failures ', h('b', null, m.consecutiveFailures || 0)),
            h('span', null, 'last seen ', h('b', null, m.lastSeen ? fmtTime(m.lastSeen) : 'never'))));
      }));
    };
    every(c, 2000, async () => { data = await getJSON('/status/machines'); fetched = now(); draw(); });
    const t = setInterval(draw, 1000);
    c.cleanups.push(() => clearInterval(t));
  }

  // ------------------------------------------------------------------ start

  setInterval(headerState, 5000);
  headerState();
  route();
})();
