// Pure layout and formatting helpers of the web UI: no DOM, no fetch, so
// they are unit-tested with node --test (web/jstest).

/** Positions of n sites on a circle centred at (cx, cy), the first at the
 * top, clockwise. One site sits at the centre. */
export function circleLayout(n, cx, cy, r) {
  if (n <= 0) return [];
  if (n === 1) return [{ x: cx, y: cy }];
  const out = [];
  for (let i = 0; i < n; i++) {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / n;
    out.push({ x: round2(cx + r * Math.cos(a)), y: round2(cy + r * Math.sin(a)) });
  }
  return out;
}

function round2(v) {
  return Math.round(v * 100) / 100;
}

/** A link's cost (microseconds of round-trip time) for a label. */
export function formatCost(us) {
  if (!Number.isFinite(us) || us < 0) return '?';
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1e6) {
    const ms = us / 1000;
    return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
  }
  return `${(us / 1e6).toFixed(2)} s`;
}

/** Bytes in binary units. */
export function formatBytes(b) {
  if (!b) return '0';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = b;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`;
}

const MIN = 60e3;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const STEPS = [5 * MIN, 10 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY];

/** The smallest tick step that puts at most maxTicks ticks in rangeMs. */
export function tickStep(rangeMs, maxTicks = 8) {
  for (const s of STEPS) {
    if (rangeMs / s <= maxTicks) return s;
  }
  return STEPS[STEPS.length - 1];
}

/** Tick instants (ms) in [start, end], aligned to local midnight plus
 * multiples of step. */
export function ticks(start, end, step) {
  const d = new Date(start);
  let t = new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  if (step >= DAY) {
    // whole days (weeks start on the day of the range's first midnight)
    while (t < start) t += DAY;
  } else {
    t += Math.ceil((start - t) / step) * step;
  }
  const out = [];
  for (; t <= end && out.length < 1000; t += step) out.push(t);
  return out;
}

/** x of instant t on a scale mapping [start, end] to [x0, x1]. */
export function scaleX(t, start, end, x0, x1) {
  if (end <= start) return x0;
  return x0 + ((t - start) / (end - start)) * (x1 - x0);
}

/** Is the phase one whose reservation holds resources in the timetable? */
function shown(vc) {
  return vc.phase !== 'cancelled' && vc.state !== 'cancelled';
}

/**
 * Rows of the reservation timetable for VCs (the API's VC objects) whose
 * window meets [from, to]: one per compute host (mode "host": a bar per
 * VC with nodes there) or one per VC (mode "vc"). Rows are sorted by
 * name in natural order; a row's bars by start.
 */
export function ganttRows(vcs, mode, from, to) {
  const rows = new Map();
  for (const vc of vcs || []) {
    if (!shown(vc) || !vc.window) continue;
    const start = Date.parse(vc.window.start);
    const end = Date.parse(vc.window.end);
    if (!(end > from && start < to)) continue;
    const bar = { vc: vc.vc, start, end, phase: vc.phase || 'scheduled', nodes: 0, owner: vc.owner || '' };
    if (mode === 'vc') {
      const sites = [...new Set(((vc.placement && vc.placement.nodes) || []).map((n) => n.site))].sort(natural);
      rows.set(vc.vc, { key: vc.vc, label: vc.vc, sub: sites.join(', '), bars: [{ ...bar, nodes: nodesOf(vc).length }] });
      continue;
    }
    const perHost = new Map();
    for (const n of nodesOf(vc)) {
      const h = perHost.get(n.host) || { site: n.site, count: 0 };
      h.count++;
      perHost.set(n.host, h);
    }
    for (const [host, h] of perHost) {
      let row = rows.get(host);
      if (!row) {
        row = { key: host, label: host, sub: h.site || '', bars: [] };
        rows.set(host, row);
      }
      row.bars.push({ ...bar, nodes: h.count });
    }
  }
  const out = [...rows.values()].sort((a, b) => natural(a.key, b.key));
  for (const r of out) r.bars.sort((a, b) => a.start - b.start || natural(a.vc, b.vc));
  return out;
}

function nodesOf(vc) {
  return (vc.placement && vc.placement.nodes) || [];
}

/** Natural order: "h2" before "h10". */
export function natural(a, b) {
  return String(a).localeCompare(String(b), 'en', { numeric: true });
}

/** A Date as the value of an <input type="datetime-local"> (local time,
 * minutes). */
export function toLocalInput(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** Builds the API's ReserveRequest from the reservation form's values
 * (strings), or throws an Error naming the bad field. */
export function reserveRequest(f) {
  const req = {
    vc: String(f.vc || '').trim(),
    nodes: int(f.nodes, 'nodes', 1),
    memory_mib: int(f.memory_mib, 'memory', 1),
    vcpus: int(f.vcpus, 'vCPUs', 1),
  };
  if (!/^[A-Za-z0-9._-]{1,63}$/.test(req.vc) || req.vc === '.' || req.vc === '..') {
    throw new Error('VC name: use 1-63 letters, digits, ".", "_" or "-"');
  }
  const disk = Number(f.disk_gib || 0);
  if (!Number.isFinite(disk) || disk < 0) throw new Error('disk: a number of GiB, 0 for none');
  if (disk > 0) req.disk_bytes = Math.round(disk * 2 ** 30);
  const start = new Date(f.start);
  const end = new Date(f.end);
  if (Number.isNaN(start.getTime())) throw new Error('window start: not a date and time');
  if (Number.isNaN(end.getTime())) throw new Error('window end: not a date and time');
  if (end <= start) throw new Error('window end must be after its start');
  req.start = start.toISOString();
  req.end = end.toISOString();
  if (f.policy) req.policy = f.policy;
  const sites = String(f.sites || '')
    .split(/[\s,]+/)
    .filter(Boolean);
  if (sites.length) req.sites = sites;
  if (f.frontend) req.frontend = true;
  if (f.image && String(f.image).trim()) req.image = String(f.image).trim();
  const keys = String(f.ssh_keys || '')
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean);
  if (keys.length) req.ssh_keys = keys;
  return req;
}

function int(v, name, min) {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name}: a whole number, at least ${min}`);
  return n;
}
