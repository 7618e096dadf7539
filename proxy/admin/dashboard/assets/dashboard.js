// shiftgate migration dashboard. It polls this admin listener's JSON endpoints and
// /metrics, and renders one card per route. Every number it shows is also kept raw in
// a data-* attribute of the card, so what the page says can be checked against the API.
// No framework: DOM calls and uPlot (vendored). Data is only ever put in text nodes.
(function () {
  'use strict';

  var TOKEN_KEY = 'shiftgate.admin.token';
  var FETCH_TIMEOUT_MS = 10000;
  var MAX_EVENTS = 200;
  var COHORTS = ['moved', 'stayed', 'failover', 'fallback'];
  var COLORS = { moved: '#2f6fdf', stayed: '#3c9a72', failover: '#e0821e', fallback: '#8a4fc7' };
  var EVENT_COLORS = {
    start: '#3c9a72', reload: '#3c9a72', reload_refused: '#b7791f', split: '#2f6fdf',
    clear: '#6b7480', rollback: '#c8322d', breaker: '#e0821e'
  };

  var S = {
    info: null,            // GET /v1/dashboard
    fleet: false,          // fleet view asked for
    history: '10m',
    lastSeq: 0,            // newest event seen
    events: [],            // newest last, at most MAX_EVENTS
    cards: new Map(),      // route name -> card state
    rows: new Map(),       // route name -> overview row
    polls: 0,
    timer: null,
    busy: false,
    again: false
  };

  var body = document.body;

  // ---- small helpers ------------------------------------------------------------

  function $(sel, root) { return (root || document).querySelector(sel); }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function setText(node, text) {
    text = text === undefined || text === null ? '' : String(text);
    if (node.textContent !== text) node.textContent = text;
  }

  function setData(node, name, value) {
    var v = value === undefined || value === null ? '' : String(value);
    if (node.getAttribute('data-' + name) !== v) node.setAttribute('data-' + name, v);
  }

  function row(cells, classes) {
    var tr = el('tr');
    cells.forEach(function (c, i) {
      var td = el('td', classes && classes[i]);
      if (c instanceof Node) td.appendChild(c); else td.textContent = c === undefined || c === null ? '' : String(c);
      tr.appendChild(td);
    });
    return tr;
  }

  function fmtInt(n) { return (n || 0).toLocaleString('en-US'); }

  function fmtPct(p) { return (Math.round((p || 0) * 100) / 100) + ' %'; }

  function fmtShare(x) { return fmtPct((x || 0) * 100); }

  function fmtMs(ms) {
    if (!ms) return '–';
    if (ms < 1) return ms.toFixed(2) + ' ms';
    if (ms < 100) return ms.toFixed(1) + ' ms';
    return Math.round(ms) + ' ms';
  }

  function fmtBytes(b) {
    var units = ['B', 'kB', 'MB', 'GB', 'TB'];
    var i = 0;
    b = b || 0;
    while (b >= 1000 && i < units.length - 1) { b /= 1000; i++; }
    return (i === 0 ? Math.round(b) : b.toFixed(b < 10 ? 2 : 1)) + ' ' + units[i];
  }

  function fmtRate(x) {
    if (!x) return '0';
    return x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : fmtInt(Math.round(x));
  }

  function fmtTime(t) {
    var d = t instanceof Date ? t : new Date(t);
    if (isNaN(d)) return '';
    return d.toLocaleTimeString('en-GB', { hour12: false });
  }

  function fmtSigned(x, digits, unit) {
    var s = x.toFixed(digits);
    return (x > 0 ? '+' : '') + s + unit;
  }

  // ---- the token ---------------------------------------------------------------

  // A #token=... fragment is never sent to the server; it is moved into this tab's
  // session storage and removed from the address bar and history.
  function takeTokenFromFragment() {
    var m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (!m) return;
    try { sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1])); } catch (e) { /* storage off */ }
    history.replaceState(null, '', location.pathname + location.search);
  }

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }

  function showTokenForm(why) {
    var f = $('#token-form');
    f.hidden = false;
    if (why) setText($('#error'), why);
    $('#error').hidden = !why;
    setPoll(false, 'needs the admin token');
    $('#token-input').focus();
  }

  $('#token-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var v = $('#token-input').value.trim();
    if (!v) return;
    try { sessionStorage.setItem(TOKEN_KEY, v); } catch (e) { /* storage off */ }
    $('#token-input').value = '';
    $('#token-form').hidden = true;
    $('#error').hidden = true;
    pollNow();
  });

  // ---- fetching ------------------------------------------------------------------

  function HTTPError(status, message) {
    this.status = status;
    this.message = message;
  }
  HTTPError.prototype = Object.create(Error.prototype);

  function get(path, kind) {
    var ctl = new AbortController();
    var timer = setTimeout(function () { ctl.abort(); }, FETCH_TIMEOUT_MS);
    var headers = {};
    var t = token();
    if (t) headers.Authorization = 'Bearer ' + t;
    return fetch(path, { headers: headers, signal: ctl.signal, cache: 'no-store', credentials: 'omit' })
      .then(function (r) {
        if (r.ok) return kind === 'text' ? r.text() : r.json();
        return r.text().then(function (txt) {
          var msg = r.statusText;
          try { msg = JSON.parse(txt).error || msg; } catch (e) { /* not JSON */ }
          throw new HTTPError(r.status, path + ': ' + r.status + ' ' + msg);
        });
      }, function (err) {
        throw new HTTPError(0, path + ': ' + (err.name === 'AbortError' ? 'no answer in ' + FETCH_TIMEOUT_MS / 1000 + ' s' : err.message));
      })
      .finally(function () { clearTimeout(timer); });
  }

  function setPoll(ok, text) {
    var p = $('#poll');
    p.className = 'poll ' + (ok ? 'ok' : 'bad');
    setText(p, text);
  }

  function pollNow() {
    if (S.busy) { S.again = true; return; }
    if (S.timer) clearTimeout(S.timer);
    S.timer = null;
    poll();
  }

  function poll() {
    S.timer = null;
    if (body.getAttribute('data-token-required') === 'true' && !token()) {
      showTokenForm('');
      return;
    }
    S.busy = true;
    var started = performance.now();
    var info = S.info ? Promise.resolve(S.info) : get('/v1/dashboard', 'json');
    info.then(function (inf) {
      if (!S.info) { S.info = inf; applyInfo(); }
      var f = S.info.features;
      var fleet = S.fleet && f.fleet;
      var statsURL = '/v1/stats?history=' + encodeURIComponent(S.history) + (fleet ? '&fleet=1' : '');
      return Promise.all([
        f.stats ? get(statsURL, 'json') : Promise.resolve(null),
        get('/v1/status', 'json'),
        get('/v1/events?since=' + S.lastSeq, 'json'),
        get('/metrics', 'text'),
        get('/v1/diff', 'json'),
        f.plans ? get('/v1/plans', 'json').catch(function (e) {
          if (e.status === 404) { f.plans = false; return null; }
          throw e;
        }) : Promise.resolve(null)
      ]).then(function (all) {
        render({ stats: all[0], status: all[1], events: all[2], metrics: parseMetrics(all[3]), diff: all[4], plans: all[5], fleet: fleet });
        S.polls++;
        setData(body, 'polls', S.polls);
        setData(body, 'last-poll', Date.now());
        $('#error').hidden = true;
        setPoll(true, 'updated ' + fmtTime(new Date()) + ' (' + Math.round(performance.now() - started) + ' ms)');
      });
    }).catch(function (e) {
      if (e.status === 401) {
        try { sessionStorage.removeItem(TOKEN_KEY); } catch (x) { /* storage off */ }
        S.busy = false;
        showTokenForm('The admin API refused the token.');
        return;
      }
      setText($('#error'), 'Last update failed: ' + (e.message || e) + ' (the page keeps the last numbers and tries again).');
      $('#error').hidden = false;
      setPoll(false, 'update failed ' + fmtTime(new Date()));
    }).then(function () {
      if (!S.busy) return;
      S.busy = false;
      var wait = S.again ? 0 : (S.info ? S.info.poll_ms : 1500);
      S.again = false;
      S.timer = setTimeout(poll, wait);
    });
  }

  function applyInfo() {
    var box = $('#fleet');
    var label = $('#fleet-label');
    box.disabled = !S.info.features.fleet;
    if (!S.info.features.fleet) {
      label.title = 'this gateway has no fleet store (fleet.etcd): the page shows this instance';
      label.classList.add('dim');
    }
  }

  $('#fleet').addEventListener('change', function (ev) {
    S.fleet = ev.target.checked;
    setData(body, 'view', S.fleet ? 'fleet' : 'local');
    S.cards.forEach(function (c) { c.prevBytes = null; });
    pollNow();
  });

  $('#history').addEventListener('change', function (ev) {
    S.history = ev.target.value;
    pollNow();
  });

  // ---- /metrics ----------------------------------------------------------------

  var WANTED = {
    shiftgate_failovers_total: true, shiftgate_fallbacks_total: true, shiftgate_fallback_misses_total: true,
    shiftgate_breaker_transitions_total: true, shiftgate_requests_total: true
  };

  function parseLabels(s) {
    var out = {};
    var re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    var m;
    while ((m = re.exec(s))) {
      out[m[1]] = m[2].replace(/\\(.)/g, function (_, c) { return c === 'n' ? '\n' : c; });
    }
    return out;
  }

  // parseMetrics keeps, per route, the counters the page shows beside the stats.
  function parseMetrics(text) {
    var routes = {};
    function route(name) {
      return routes[name] || (routes[name] = {
        failovers: 0, fallbacks: 0, fallbackKinds: {}, fallbackMisses: 0, transitions: 0, transitionList: [], requests: {}
      });
    }
    text.split('\n').forEach(function (line) {
      if (!line || line.charAt(0) === '#') return;
      var m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$/.exec(line);
      if (!m || !WANTED[m[1]]) return;
      var l = parseLabels(m[2]);
      var v = Number(m[3]);
      if (!l.route || !isFinite(v)) return;
      var r = route(l.route);
      switch (m[1]) {
        case 'shiftgate_failovers_total': r.failovers += v; break;
        case 'shiftgate_fallbacks_total': r.fallbacks += v; r.fallbackKinds[l.kind] = (r.fallbackKinds[l.kind] || 0) + v; break;
        case 'shiftgate_fallback_misses_total': r.fallbackMisses += v; break;
        case 'shiftgate_breaker_transitions_total':
          r.transitions += v;
          if (v > 0) r.transitionList.push({ region: l.region, from: l.from, to: l.to, n: v });
          break;
        case 'shiftgate_requests_total': r.requests[l.region] = (r.requests[l.region] || 0) + v; break;
      }
    });
    return routes;
  }

  // ---- rendering ----------------------------------------------------------------

  function render(d) {
    addEvents(d.events && d.events.events);
    renderMeta(d);
    renderRollback(d.status.rollback);
    renderFleet(d);
    var statsByName = {};
    if (d.stats) d.stats.routes.forEach(function (r) { statsByName[r.name] = r; });
    var diffByName = {};
    if (d.diff && d.diff.routes) d.diff.routes.forEach(function (r) { diffByName[r.name] = r; });
    var planByRoute = {};
    if (d.plans && d.plans.plans) d.plans.plans.forEach(function (p) { planByRoute[p.route] = p; });

    var names = d.status.routes.map(function (r) { return r.name; });
    // Routes a reload removed leave the page.
    S.cards.forEach(function (c, name) {
      if (names.indexOf(name) < 0) {
        if (c.chart) c.chart.destroy();
        c.root.remove();
        S.rows.get(name).remove();
        S.cards.delete(name);
        S.rows.delete(name);
      }
    });
    var now = performance.now();
    d.status.routes.forEach(function (rs, i) {
      var card = S.cards.get(rs.name) || newCard(rs.name, i);
      var st = statsByName[rs.name];
      var m = d.metrics[rs.name] || { failovers: 0, fallbacks: 0, fallbackKinds: {}, fallbackMisses: 0, transitions: 0, transitionList: [], requests: {} };
      var plan = planByRoute[rs.name] || rs.plan || null;
      updateCard(card, rs, st, m, diffByName[rs.name], plan, d.stats, now);
      updateRow(S.rows.get(rs.name), card, rs, st, m);
    });
    renderEvents();
  }

  function renderMeta(d) {
    var st = d.status;
    var dl = $('#meta');
    var items = [
      ['instance', d.stats ? (d.fleet ? (d.stats.instances || []).join(', ') : d.stats.instance) : '–'],
      ['self region', d.stats && d.stats.self_region ? d.stats.self_region : '–'],
      ['config', 'v' + st.config_version + ' · ' + (st.config_hash || '').slice(0, 8)],
      ['overrides', st.override_store + ' rev ' + st.override_revision + (st.store_up ? '' : ' · STORE DOWN: ' + (st.store_error || ''))],
      ['tunnels', st.tunnels]
    ];
    clear(dl);
    items.forEach(function (it) {
      var div = el('div');
      div.appendChild(el('dt', '', it[0]));
      div.appendChild(el('dd', '', it[1]));
      dl.appendChild(div);
    });
    setData(body, 'config-version', st.config_version);
    setData(body, 'override-revision', st.override_revision);
    setData(body, 'rollback', st.rollback.on ? 'on' : st.rollback.ramping ? 'ramping' : 'off');
  }

  function renderRollback(rb) {
    var b = $('#rollback');
    if (rb.on) {
      b.className = 'banner on';
      setText(b, 'ROLLBACK ON: every route is served by its from region' + (rb.who ? ' (by ' + rb.who + (rb.at ? ' at ' + fmtTime(rb.at) : '') + ')' : ''));
      b.hidden = false;
    } else if (rb.ramping) {
      b.className = 'banner ramp';
      setText(b, 'Rollback off, ramping back: splits climb to their set values until ' + fmtTime(rb.ramp_until) + '.');
      b.hidden = false;
    } else {
      b.hidden = true;
    }
  }

  function renderFleet(d) {
    var panel = $('#fleet-panel');
    if (!d.fleet || !d.stats) {
      panel.hidden = true;
      setData(body, 'instances', '');
      setData(body, 'missing', '');
      return;
    }
    panel.hidden = false;
    var inst = d.stats.instances || [];
    var missing = d.stats.missing || [];
    var p = $('#fleet-text');
    clear(p);
    p.appendChild(document.createTextNode('Merged ' + inst.length + ' instance' + (inst.length === 1 ? '' : 's') + ': ' + (inst.join(', ') || '–') + '. '));
    var miss = el('span', missing.length ? 'verdict fail' : 'dim',
      missing.length ? 'Did not answer (left out): ' + missing.join(', ') + '.' : 'Every registered instance answered.');
    p.appendChild(miss);
    setData(body, 'instances', inst.join(','));
    setData(body, 'missing', missing.join(','));
  }

  function newCard(name, index) {
    var root = document.importNode($('#route-tpl').content, true).firstElementChild;
    root.id = 'route-' + index;
    setData(root, 'route', name);
    $('#routes').appendChild(root);
    var c = { name: name, root: root, chart: null, chartKey: '', prevBytes: null, events: [] };
    S.cards.set(name, c);
    var tr = el('tr');
    setData(tr, 'route', name);
    for (var i = 0; i < 11; i++) tr.appendChild(el('td'));
    var a = el('a', '', name);
    a.href = '#' + root.id;
    tr.firstChild.appendChild(a);
    $('#overview tbody').appendChild(tr);
    S.rows.set(name, tr);
    return c;
  }

  function splitSource(rs) { return rs.source || (rs.override ? 'override' : 'file'); }

  function breakerText(rs) {
    var regions = Object.keys(rs.breakers || {}).sort();
    return regions.map(function (r) { return r + ' ' + rs.breakers[r]; }).join(', ');
  }

  function updateRow(tr, card, rs, st, m) {
    var td = tr.children;
    setText(td[1], rs.from + ' → ' + rs.to);
    setText(td[2], fmtPct(rs.percent) + ' / ' + fmtPct(rs.write_percent));
    setText(td[3], splitSource(rs));
    setText(td[4], st ? fmtShare(st.moved_share) : '–');
    setText(td[5], st ? fmtRate(st.rps) : '–');
    setText(td[6], card.root.querySelector('.mvs').getAttribute('data-verdict') || '–');
    setText(td[7], card.root.querySelector('.svp').getAttribute('data-verdict') || '–');
    setText(td[8], breakerText(rs) || 'off');
    setText(td[9], fmtInt(m.failovers));
    setText(td[10], fmtInt(m.fallbacks));
    td[6].className = 'verdict ' + verdictClass(td[6].textContent);
    td[7].className = 'verdict ' + verdictClass(td[7].textContent);
  }

  function verdictClass(v) { return v === 'too few samples' ? 'few' : v; }

  function updateCard(c, rs, st, m, diff, plan, snap, now) {
    var root = c.root;
    var src = splitSource(rs);
    setText($('.name', root), rs.name);
    setText($('.fromto', root), rs.from + ' → ' + rs.to);
    var badge = $('.src', root);
    setText(badge, src === 'override' ? 'override' : 'file');
    badge.className = 'badge src ' + src;

    // The split: what is set, where it comes from, and what is in force now.
    setData(root, 'percent', rs.percent);
    setData(root, 'write-percent', rs.write_percent);
    setData(root, 'file-percent', rs.file_percent);
    setData(root, 'effective-percent', rs.effective_percent);
    setData(root, 'source', src);
    var split = $('.kpi.split', root);
    setText($('.value', split), fmtPct(rs.percent) + ' / ' + fmtPct(rs.write_percent));
    var sub = src === 'override'
      ? 'override' + (rs.override && rs.override.who ? ' by ' + rs.override.who : '') + (rs.override && rs.override.at ? ' at ' + fmtTime(rs.override.at) : '') +
        '; file ' + fmtPct(rs.file_percent) + ' / ' + fmtPct(rs.file_write_percent)
      : 'from the config file';
    if (rs.effective_percent !== rs.percent || rs.effective_write_percent !== rs.write_percent) {
      sub += '; in force now ' + fmtPct(rs.effective_percent) + ' / ' + fmtPct(rs.effective_write_percent);
    }
    setText($('.sub', split), sub);

    // Breakers and their transitions.
    setData(root, 'breakers', breakerText(rs));
    var br = $('.kpi.breakers', root);
    clear($('.value', br));
    Object.keys(rs.breakers || {}).sort().forEach(function (region, i) {
      if (i) $('.value', br).appendChild(document.createTextNode(' '));
      $('.value', br).appendChild(el('span', 'state-' + rs.breakers[region], region + ' ' + rs.breakers[region]));
    });
    if (!Object.keys(rs.breakers || {}).length) setText($('.value', br), 'off');
    setText($('.sub', br), fmtInt(m.transitions) + ' transitions since start');
    setData(root, 'breaker-transitions', m.transitions);
    renderTransitions(c, rs, m);

    // Failovers and fallbacks: attempts and serves from /metrics, answers from the stats.
    setData(root, 'failovers-total', m.failovers);
    setData(root, 'fallbacks-total', m.fallbacks);
    setData(root, 'fallback-misses-total', m.fallbackMisses);
    var fo = $('.kpi.failover', root);
    setText($('.value', fo), fmtInt(m.failovers));
    setText($('.sub', fo), st ? fmtInt(st.cohorts.failover.requests) + ' answered by the other region' : '');
    var fb = $('.kpi.fallback', root);
    setText($('.value', fb), fmtInt(m.fallbacks));
    var kinds = Object.keys(m.fallbackKinds).filter(function (k) { return m.fallbackKinds[k] > 0; })
      .map(function (k) { return k + ' ' + fmtInt(m.fallbackKinds[k]); });
    setText($('.sub', fb), (kinds.length ? kinds.join(' · ') + '; ' : '') + fmtInt(m.fallbackMisses) + ' with nothing to serve');

    renderPlan(c, plan);
    renderMirror(c, diff);

    if (!st) {
      setText($('.kpi.share .value', root), 'stats off');
      return;
    }
    // Observed moved share against the split in force.
    setData(root, 'requests', st.requests);
    setData(root, 'rps', st.rps);
    setData(root, 'moved-share', st.moved_share);
    COHORTS.forEach(function (k) {
      setData(root, k, st.cohorts[k].requests);
      setData(root, k + '-errors', st.cohorts[k].errors);
    });
    setData(root, 'top-sources', (st.top_sources || []).length);
    var share = $('.kpi.share', root);
    setText($('.value', share), fmtShare(st.moved_share) + ' vs ' + fmtPct(rs.effective_percent));
    $('.observed', share).style.width = Math.min(100, st.moved_share * 100) + '%';
    $('.configured', share).style.left = Math.min(100, rs.effective_percent) + '%';
    var rps = $('.kpi.rps', root);
    setText($('.value', rps), fmtRate(st.rps));
    setText($('.sub', rps), fmtInt(st.requests) + ' requests since start');

    renderCohorts(c, st);
    renderCompare($('.mvs', root), st.compare.moved_vs_stayed, snap.criteria,
      'moved (' + st.to + ') vs stayed (' + st.from + '), same minute', 'moved', 'stayed');
    renderCompare($('.svp', root), st.compare.stayed_vs_past, snap.criteria,
      'stayed (' + st.from + ') now vs its own past', 'now', 'before');
    renderPairs(c, st, now);
    renderTop(c, st);
    renderChart(c, st);
  }

  function renderCohorts(c, st) {
    var tb = $('.cohorts tbody', c.root);
    clear(tb);
    COHORTS.forEach(function (k) {
      var r = st.cohorts[k];
      tb.appendChild(row([k, fmtInt(r.requests), fmtInt(r.errors) + (r.requests ? ' (' + fmtShare(r.error_ratio) + ')' : ''),
        fmtMs(r.p50_ms), fmtMs(r.p95_ms), fmtMs(r.p99_ms), fmtBytes(r.bytes_in) + ' / ' + fmtBytes(r.bytes_out)],
      ['c-' + k, 'num', 'num', 'num', 'num', 'num', 'num']));
    });
  }

  // renderCompare shows one comparison. A verdict over too few samples is shown as
  // "too few samples", never as a pass.
  function renderCompare(box, cmp, crit, title, aName, bName) {
    clear(box);
    var minE = crit && crit.error ? crit.error.min_requests : 1000;
    var minL = crit && crit.latency ? crit.latency.min_requests : 1000;
    var few = false;
    (cmp.gates || []).forEach(function (g) {
      var min = g.name === 'error_ratio' ? minE : minL;
      if (g.samples.moved < min || g.samples.stayed < min) few = true;
    });
    var verdict = cmp.verdict;
    if (verdict !== 'fail' && few) verdict = 'too few samples';
    box.className = 'box compare ' + (box.classList.contains('mvs') ? 'mvs ' : 'svp ') + verdictClass(verdict);
    setData(box, 'verdict', verdict);
    setData(box, 'a-requests', cmp.a.requests);
    setData(box, 'b-requests', cmp.b.requests);
    setData(box, 'error-delta-points', cmp.error_delta_points);
    setData(box, 'p99-delta', cmp.p99_delta);

    var head = el('div', 'line');
    head.appendChild(el('h3', '', title));
    head.appendChild(el('span', 'verdict ' + verdictClass(verdict), verdict));
    box.appendChild(head);
    var deltas = el('div', 'line' + (few ? ' few' : ''));
    deltas.appendChild(el('span', 'delta', 'errors ' + fmtSigned(cmp.error_delta_points, 2, ' pts')));
    deltas.appendChild(el('span', 'delta', 'p99 ' + (cmp.a.p99_ms && cmp.b.p99_ms ? fmtSigned(cmp.p99_delta * 100, 1, ' %') : '–')));
    box.appendChild(deltas);
    var t = el('table');
    var th = el('thead');
    th.appendChild(row(['', aName, bName]));
    t.appendChild(th);
    var tb = el('tbody');
    tb.appendChild(row(['samples', fmtInt(cmp.a.requests), fmtInt(cmp.b.requests)], ['', 'num', 'num']));
    tb.appendChild(row(['error ratio', fmtShare(cmp.a.error_ratio), fmtShare(cmp.b.error_ratio)], ['', 'num', 'num']));
    tb.appendChild(row(['p99', fmtMs(cmp.a.p99_ms), fmtMs(cmp.b.p99_ms)], ['', 'num', 'num']));
    t.appendChild(tb);
    box.appendChild(t);
    var notes = el('p', 'dim note');
    notes.textContent = (cmp.gates || []).map(function (g) { return g.name + ': ' + g.outcome + ' (' + g.reason + ')'; }).join('; ') +
      (few ? '. Each side needs ' + fmtInt(Math.max(minE, minL)) + ' requests in the window before the deltas mean anything.' : '');
    box.appendChild(notes);
  }

  // renderPairs shows bytes per second per region pair, from the change of the
  // cumulative byte counts between two polls.
  function renderPairs(c, st, now) {
    var pairs = st.pairs && Object.keys(st.pairs).length ? st.pairs : st.regions;
    var byPair = !!(st.pairs && Object.keys(st.pairs).length);
    var prev = c.prevBytes;
    var tb = $('.pairs tbody', c.root);
    clear(tb);
    var cur = {};
    Object.keys(pairs).sort().forEach(function (k) {
      var r = pairs[k];
      cur[k] = { bin: r.bytes_in, bout: r.bytes_out };
      var inRate = '…', outRate = '…';
      if (prev && prev.bytes[k] && now > prev.t && r.bytes_in >= prev.bytes[k].bin) {
        var dt = (now - prev.t) / 1000;
        inRate = fmtBytes((r.bytes_in - prev.bytes[k].bin) / dt) + '/s';
        outRate = fmtBytes((r.bytes_out - prev.bytes[k].bout) / dt) + '/s';
      }
      var cross = byPair && k.split('>')[0] !== k.split('>')[1];
      var name = el('span', cross ? 'verdict' : '', k.replace('>', ' → '));
      tb.appendChild(row([name, inRate, outRate, fmtInt(r.requests)], ['', 'num', 'num', 'num']));
    });
    setText($('.pairs .note', c.root), byPair
      ? 'self_region → upstream region; in is what clients sent, out what they got back.'
      : 'Per upstream region (set self_region to see region pairs).');
    c.prevBytes = { t: now, bytes: cur };
  }

  function renderTop(c, st) {
    setText($('.fromname', c.root), st.from);
    var tb = $('.top tbody', c.root);
    clear(tb);
    var top = (st.top_sources || []).slice(0, 10);
    top.forEach(function (s) {
      tb.appendChild(row([s.source, fmtInt(s.count) + ' ± ' + fmtInt(s.error)], ['', 'num']));
    });
    var note = top.length
      ? 'Sampled stayed requests (client prefix, key source, user agent). A count may be high by at most its ± error' +
        (st.top_floor ? '; a source not listed was seen at most ' + fmtInt(st.top_floor) + ' times.' : '.')
      : 'No one yet: sources are sampled once the route has moved past 0 % and requests still reach ' + st.from + '.';
    setText($('.top .note', c.root), note);
  }

  function renderTransitions(c, rs, m) {
    var ul = $('.transitions ul', c.root);
    clear(ul);
    m.transitionList.forEach(function (t) {
      ul.appendChild(el('li', '', t.region + ': ' + t.from + ' → ' + t.to + ' × ' + fmtInt(t.n)));
    });
    S.events.filter(function (e) { return e.kind === 'breaker' && e.route === rs.name; }).slice(-5).reverse().forEach(function (e) {
      ul.appendChild(el('li', 'dim', fmtTime(e.at) + ' ' + e.region + ' ' + e.detail));
    });
    if (!ul.firstChild) ul.appendChild(el('li', 'dim', 'none since start'));
  }

  function renderPlan(c, plan) {
    var box = $('.plan', c.root);
    var badge = $('.plan-badge', c.root);
    if (!plan) {
      box.hidden = true;
      badge.hidden = true;
      setData(c.root, 'plan', '');
      return;
    }
    box.hidden = false;
    badge.hidden = false;
    var steps = Array.isArray(plan.steps) ? ' of ' + plan.steps.join(' → ') + ' %' : '';
    setText(badge, 'plan ' + plan.state);
    setData(c.root, 'plan', plan.state);
    var b = $('.body', box);
    clear(b);
    b.appendChild(el('p', '', plan.state + ' · step ' + plan.step + ' at ' + fmtPct(plan.percent) + steps));
    if (plan.gates && plan.gates.length) {
      var t = el('table');
      var tb = el('tbody');
      t.appendChild(tb);
      plan.gates.forEach(function (g) {
        tb.appendChild(row([g.name, el('span', 'verdict ' + g.outcome, g.outcome), 'moved ' + g.moved, 'stayed ' + g.stayed,
          'n ' + fmtInt(g.samples && g.samples.moved) + ' / ' + fmtInt(g.samples && g.samples.stayed)]));
      });
      b.appendChild(t);
    }
  }

  function renderMirror(c, diff) {
    var box = $('.mirror', c.root);
    if (!diff) {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    setData(c.root, 'mirror-compared', diff.compared);
    var b = $('.body', box);
    clear(b);
    b.appendChild(el('p', '', fmtInt(diff.compared) + ' compared · ' + fmtInt(diff.differing) + ' differing · ' +
      fmtInt(diff.dropped) + ' dropped · ' + fmtInt(diff.errors) + ' mirror errors'));
    var fields = (diff.fields || []).slice(0, 8);
    if (fields.length) {
      var t = el('table');
      var th = el('thead');
      th.appendChild(row(['field', 'verdict', 'differs', 'noise']));
      t.appendChild(th);
      var tb = el('tbody');
      fields.forEach(function (f) {
        tb.appendChild(row([f.field, el('span', 'verdict ' + (f.verdict === 'differing' ? 'fail' : 'inconclusive'), f.verdict),
          fmtShare(f.raw_rate), fmtShare(f.noise_rate)], ['', '', 'num', 'num']));
      });
      t.appendChild(tb);
      b.appendChild(t);
    }
  }

  // ---- the chart ----------------------------------------------------------------

  function seriesData(st) {
    var h = st.history;
    if (!h) return null;
    var base = h.moved || h.stayed;
    if (!base || !base[0].length) return null;
    var step = h.step_s || 1;
    // A gateway that started a moment ago has an empty past: the chart starts a little
    // before the first request instead (showing at least a minute).
    var first = base[0].length;
    COHORTS.forEach(function (k) {
      var s = h[k];
      if (!s) return;
      for (var i = 0; i < first; i++) if (s[1][i]) { first = i; break; }
    });
    var from = Math.max(0, Math.min(first - Math.ceil(10 / step), base[0].length - Math.ceil(60 / step)));
    var xs = base[0].slice(from);
    var data = [xs];
    COHORTS.forEach(function (k) {
      var s = h[k];
      data.push(xs.map(function (t, i) { return s && s[1][from + i] !== undefined ? s[1][from + i] / step : null; }));
    });
    ['moved', 'stayed'].forEach(function (k) {
      var s = h[k];
      data.push(xs.map(function (t, i) { return s && s[3][from + i] !== undefined ? s[3][from + i] : null; }));
    });
    return { data: data, step: step };
  }

  function markersPlugin(c) {
    return {
      hooks: {
        draw: [function (u) {
          var ctx = u.ctx;
          var left = u.bbox.left, top = u.bbox.top, w = u.bbox.width, h = u.bbox.height;
          var min = u.scales.x.min, max = u.scales.x.max;
          ctx.save();
          ctx.font = Math.round(10 * devicePixelRatio) + 'px system-ui, sans-serif';
          ctx.lineWidth = Math.max(1, devicePixelRatio);
          var lastLabel = -Infinity;
          S.events.forEach(function (e) {
            if (e.route && e.route !== c.name) return;
            var t = Date.parse(e.at) / 1000;
            if (!(t >= min && t <= max)) return;
            var x = Math.round(u.valToPos(t, 'x', true));
            if (x < left || x > left + w) return;
            ctx.strokeStyle = ctx.fillStyle = EVENT_COLORS[e.kind] || '#555';
            ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + h);
            ctx.stroke();
            // Events close together share the first one's label rather than overprint it.
            if (x - lastLabel < 90 * devicePixelRatio) return;
            lastLabel = x;
            ctx.fillText(markerLabel(e), x + 3 * devicePixelRatio, top + 11 * devicePixelRatio);
          });
          ctx.restore();
        }]
      }
    };
  }

  function markerLabel(e) {
    switch (e.kind) {
      case 'split': return 'split ' + e.detail;
      case 'clear': return 'override cleared';
      case 'rollback': return 'rollback ' + e.detail.split(/[:,]/)[0];
      case 'breaker': return e.region + ' ' + e.detail.split(' -> ')[1];
      case 'reload': return 'reload ' + e.detail.split(' (')[0].replace('config version ', 'v');
      case 'reload_refused': return 'reload refused';
      default: return e.kind;
    }
  }

  function renderChart(c, st) {
    var holder = $('.chart', c.root);
    var sd = seriesData(st);
    if (!sd) {
      if (c.chart) { c.chart.destroy(); c.chart = null; }
      if (!holder.firstChild) holder.appendChild(el('p', 'dim', 'No traffic recorded yet.'));
      return;
    }
    var key = S.history + '/' + sd.step;
    if (c.chart && c.chartKey === key) {
      c.chart.setData(sd.data);
      return;
    }
    if (c.chart) c.chart.destroy();
    clear(holder);
    var rate = function (k) {
      return { label: k + ' req/s', stroke: COLORS[k], width: 1.5, scale: 'rps', points: { show: false },
        value: function (u, v) { return v === null ? '–' : fmtRate(v); } };
    };
    // p99 is unknown in a second without requests: the line spans those gaps.
    var lat = function (k) {
      return { label: k + ' p99', stroke: COLORS[k], width: 1, dash: [5, 4], scale: 'ms', spanGaps: true, points: { show: false },
        value: function (u, v) { return v === null ? '–' : fmtMs(v); } };
    };
    var opts = {
      width: Math.max(300, holder.clientWidth || 800),
      height: 220,
      plugins: [markersPlugin(c)],
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, rps: { auto: true, range: function (u, lo, hi) { return [0, Math.max(1, hi * 1.1)]; } }, ms: { auto: true, range: function (u, lo, hi) { return [0, Math.max(1, hi * 1.1)]; } } },
      axes: [
        {},
        { scale: 'rps', label: 'req/s', size: 50 },
        { scale: 'ms', label: 'p99 ms', side: 1, size: 50, grid: { show: false } }
      ],
      series: [{}, rate('moved'), rate('stayed'), rate('failover'), rate('fallback'), lat('moved'), lat('stayed')]
    };
    c.chart = new uPlot(opts, sd.data, holder);
    c.chartKey = key;
  }

  window.addEventListener('resize', function () {
    S.cards.forEach(function (c) {
      if (c.chart) c.chart.setSize({ width: Math.max(300, $('.chart', c.root).clientWidth), height: 220 });
    });
  });

  // ---- events -------------------------------------------------------------------

  function addEvents(evs) {
    if (!evs || !evs.length) return;
    evs.forEach(function (e) { if (e.seq > S.lastSeq) { S.events.push(e); S.lastSeq = e.seq; } });
    if (S.events.length > MAX_EVENTS) S.events = S.events.slice(-MAX_EVENTS);
    S.cards.forEach(function (c) { if (c.chart) c.chart.redraw(false, false); });
  }

  function renderEvents() {
    var ol = $('#events');
    setData(body, 'events', S.events.length);
    setData(body, 'last-event', S.lastSeq);
    if (ol.getAttribute('data-seq') === String(S.lastSeq)) return;
    ol.setAttribute('data-seq', String(S.lastSeq));
    clear(ol);
    S.events.slice().reverse().forEach(function (e) {
      var li = el('li');
      setData(li, 'kind', e.kind);
      li.appendChild(el('span', 'dim', fmtTime(e.at) + ' '));
      li.appendChild(el('span', 'kind ev-' + e.kind, e.kind));
      li.appendChild(document.createTextNode(' ' + [e.route, e.region, e.detail].filter(Boolean).join(' · ') + (e.who ? ' (by ' + e.who + ')' : '')));
      ol.appendChild(li);
    });
  }

  takeTokenFromFragment();
  // A token given in the fragment of a page already open (pasted into the address
  // bar) is taken the same way, and the page polls with it at once.
  window.addEventListener('hashchange', function () {
    if (!/(?:^#|&)token=/.test(location.hash)) return;
    takeTokenFromFragment();
    $('#token-form').hidden = true;
    $('#error').hidden = true;
    pollNow();
  });
  poll();
})();
