// Unit tests of the UI's pure helpers (web/static/js/layout.js), run by
// `node --test` (web_test.go runs them when node is installed).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  circleLayout,
  formatBytes,
  formatCost,
  ganttRows,
  natural,
  reserveRequest,
  scaleX,
  tickStep,
  ticks,
  toLocalInput,
} from '../static/js/layout.js';

test('circleLayout puts the first site on top, the rest clockwise on the circle', () => {
  assert.deepEqual(circleLayout(0, 100, 100, 50), []);
  assert.deepEqual(circleLayout(1, 100, 100, 50), [{ x: 100, y: 100 }]);
  const p = circleLayout(4, 100, 100, 50);
  assert.deepEqual(p, [
    { x: 100, y: 50 },
    { x: 150, y: 100 },
    { x: 100, y: 150 },
    { x: 50, y: 100 },
  ]);
  for (const q of circleLayout(7, 0, 0, 10)) assert.ok(Math.abs(Math.hypot(q.x, q.y) - 10) < 0.01);
});

test('formatCost picks the unit', () => {
  assert.equal(formatCost(850), '850 µs');
  assert.equal(formatCost(1234), '1.2 ms');
  assert.equal(formatCost(100000), '100 ms');
  assert.equal(formatCost(2500000), '2.50 s');
  assert.equal(formatCost(-1), '?');
  assert.equal(formatCost(undefined), '?');
});

test('formatBytes uses binary units', () => {
  assert.equal(formatBytes(0), '0');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(10 * 2 ** 30), '10 GiB');
  assert.equal(formatBytes(1.5 * 2 ** 20), '1.5 MiB');
});

test('tickStep keeps the tick count bounded', () => {
  const H = 3600e3;
  assert.equal(tickStep(6 * H), H);
  assert.equal(tickStep(24 * H), 3 * H);
  assert.equal(tickStep(7 * 24 * H), 24 * H);
  for (const r of [1e5, 6 * H, 24 * H, 72 * H, 7 * 24 * H, 60 * 24 * H]) {
    const s = tickStep(r);
    assert.ok(r / s <= 8 || s === 7 * 24 * H, `range ${r}: step ${s}`);
  }
});

test('ticks are aligned to whole steps of local time and within the range', () => {
  const start = new Date(2026, 2, 3, 10, 17).getTime();
  const end = start + 6 * 3600e3;
  const ts = ticks(start, end, 3600e3);
  assert.equal(ts.length, 6);
  for (const t of ts) {
    assert.ok(t >= start && t <= end);
    assert.equal(new Date(t).getMinutes(), 0);
  }
  const days = ticks(start, start + 3 * 864e5, 864e5);
  assert.equal(days.length, 3);
  for (const t of days) assert.equal(new Date(t).getHours(), 0);
});

test('scaleX maps the range linearly', () => {
  assert.equal(scaleX(0, 0, 100, 10, 110), 10);
  assert.equal(scaleX(50, 0, 100, 10, 110), 60);
  assert.equal(scaleX(100, 0, 100, 10, 110), 110);
  assert.equal(scaleX(5, 10, 10, 3, 9), 3);
});

const iso = (ms) => new Date(ms).toISOString();
function vc(name, start, end, nodes, extra = {}) {
  return { vc: name, phase: 'scheduled', state: 'admitted', window: { start: iso(start), end: iso(end) }, placement: { nodes }, ...extra };
}

test('ganttRows groups bars per host, natural order, skipping cancelled and out-of-range reservations', () => {
  const H = 3600e3;
  const vcs = [
    vc('b', 2 * H, 4 * H, [
      { name: 'node00', host: 'h10', site: 's2' },
      { name: 'node01', host: 'h2', site: 's1' },
      { name: 'node02', host: 'h2', site: 's1' },
    ]),
    vc('a', 0, 3 * H, [{ name: 'node00', host: 'h2', site: 's1' }]),
    vc('gone', 0, H, [{ name: 'node00', host: 'h1', site: 's1' }], { phase: 'cancelled', state: 'cancelled' }),
    vc('later', 50 * H, 51 * H, [{ name: 'node00', host: 'h3', site: 's1' }]),
  ];
  const rows = ganttRows(vcs, 'host', 0, 10 * H);
  assert.deepEqual(
    rows.map((r) => [r.key, r.sub, r.bars.map((b) => `${b.vc}x${b.nodes}`)]),
    [
      ['h2', 's1', ['ax1', 'bx2']],
      ['h10', 's2', ['bx1']],
    ],
  );
  const byVC = ganttRows(vcs, 'vc', 0, 10 * H);
  assert.deepEqual(
    byVC.map((r) => [r.label, r.sub, r.bars[0].nodes]),
    [
      ['a', 's1', 1],
      ['b', 's1, s2', 3],
    ],
  );
  assert.deepEqual(ganttRows(undefined, 'host', 0, 1), []);
});

test('natural order', () => {
  assert.deepEqual(['h10', 'h2', 'h1'].sort(natural), ['h1', 'h2', 'h10']);
});

test('reserveRequest builds the API body and names bad fields', () => {
  const start = new Date(2026, 0, 2, 3, 4);
  const end = new Date(2026, 0, 2, 5, 4);
  const req = reserveRequest({
    vc: ' lab ',
    nodes: '3',
    memory_mib: '2048',
    vcpus: '2',
    disk_gib: '1.5',
    start: toLocalInput(start),
    end: toLocalInput(end),
    policy: 'spread',
    sites: 'osaka, tokyo',
    frontend: true,
    image: '',
    ssh_keys: 'ssh-ed25519 AAAA a\n\n',
  });
  assert.deepEqual(req, {
    vc: 'lab',
    nodes: 3,
    memory_mib: 2048,
    vcpus: 2,
    disk_bytes: 1.5 * 2 ** 30,
    start: start.toISOString(),
    end: end.toISOString(),
    policy: 'spread',
    sites: ['osaka', 'tokyo'],
    frontend: true,
    ssh_keys: ['ssh-ed25519 AAAA a'],
  });
  const ok = { vc: 'x', nodes: '1', memory_mib: '1', vcpus: '1', start: toLocalInput(start), end: toLocalInput(end) };
  assert.deepEqual(Object.keys(reserveRequest(ok)).sort(), ['end', 'memory_mib', 'nodes', 'start', 'vc', 'vcpus']);
  assert.throws(() => reserveRequest({ ...ok, vc: 'bad name' }), /VC name/);
  assert.throws(() => reserveRequest({ ...ok, vc: '..' }), /VC name/);
  assert.throws(() => reserveRequest({ ...ok, nodes: '0' }), /nodes/);
  assert.throws(() => reserveRequest({ ...ok, memory_mib: '1.5' }), /memory/);
  assert.throws(() => reserveRequest({ ...ok, disk_gib: '-1' }), /disk/);
  assert.throws(() => reserveRequest({ ...ok, start: '' }), /window start/);
  assert.throws(() => reserveRequest({ ...ok, end: ok.start }), /after its start/);
});

test('toLocalInput formats local minutes', () => {
  assert.equal(toLocalInput(new Date(2026, 10, 5, 7, 9, 59)), '2026-11-05T07:09');
});
