// The reservation timetable as a Gantt chart: one row per compute host
// (or per VC), a bar per reservation window, a line at the present.

import { ganttRows, scaleX, tickStep, ticks } from './layout.js';
import { s } from './svg.js';

const W = 960;
const LABEL_W = 150;
const AXIS_H = 34;
const ROW_H = 30;
const PAD_R = 12;

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/**
 * Draws the VCs (GET /api/v1/vcs) whose windows meet [from, to] into the
 * <svg> element, grouped by mode ("host" or "vc"), with the now-line at
 * now (ms).
 */
export function renderGantt(svg, vcs, { mode, from, to, now }) {
  const rows = ganttRows(vcs, mode, from, to);
  const height = AXIS_H + Math.max(rows.length, 1) * ROW_H + 8;
  const x0 = LABEL_W;
  const x1 = W - PAD_R;
  const x = (t) => scaleX(t, from, to, x0, x1);
  svg.setAttribute('viewBox', `0 0 ${W} ${height}`);
  const nbars = rows.reduce((n, r) => n + r.bars.length, 0);
  const children = [
    s('title', { id: 'gantt-title', text: 'Reservation timetable' }),
    s('desc', {
      id: 'gantt-desc',
      text: `${rows.length} ${mode === 'vc' ? 'virtual clusters' : 'hosts'}, ${nbars} reservation windows between ${fullFmt.format(from)} and ${fullFmt.format(to)}.`,
    }),
    s('defs', {}, [s('clipPath', { id: 'gantt-clip' }, [s('rect', { x: x0, y: 0, width: x1 - x0, height })])]),
  ];
  // Axis: ticks with time labels, the date where it changes.
  const axis = s('g', { class: 'axis' });
  const step = tickStep(to - from);
  let lastDay = '';
  for (const t of ticks(from, to, step)) {
    const tx = x(t);
    const day = dayFmt.format(t);
    const label = step >= 864e5 ? day : day !== lastDay ? `${day} ${timeFmt.format(t)}` : timeFmt.format(t);
    lastDay = day;
    axis.append(
      s('line', { class: 'grid', x1: tx, x2: tx, y1: AXIS_H - 6, y2: height - 8 }),
      s('text', { x: tx, y: AXIS_H - 12, 'text-anchor': 'middle', text: label }),
    );
  }
  children.push(axis);
  const body = s('g', { class: 'rows' });
  if (!rows.length) {
    body.append(s('text', { x: (x0 + x1) / 2, y: AXIS_H + ROW_H / 2, dy: '0.35em', 'text-anchor': 'middle', class: 'empty', text: 'No reservations in this period.' }));
  }
  rows.forEach((row, i) => {
    const y = AXIS_H + i * ROW_H;
    const g = s('g', { class: 'row', 'data-row': row.key });
    g.append(
      s('rect', { class: i % 2 ? 'stripe odd' : 'stripe', x: 0, y, width: W, height: ROW_H }),
      s('text', { class: 'row-label', x: 8, y: y + ROW_H / 2, dy: '0.35em' }, [row.label, row.sub ? s('tspan', { class: 'row-sub', dx: 6, text: row.sub }) : null]),
    );
    const bars = s('g', { 'clip-path': 'url(#gantt-clip)' });
    for (const b of row.bars) {
      const bx = Math.max(x(b.start), x0 - 2);
      const bw = Math.max(Math.min(x(b.end), x1 + 2) - bx, 3);
      const tip = `${b.vc}: ${fullFmt.format(b.start)} – ${fullFmt.format(b.end)}, ${b.phase}, ${b.nodes} node${b.nodes === 1 ? '' : 's'}${b.owner ? `, owner ${b.owner}` : ''}`;
      bars.append(
        s('g', { class: `bar phase-${b.phase}`, 'data-vc': b.vc }, [
          s('title', { text: tip }),
          s('rect', { x: bx, y: y + 5, width: bw, height: ROW_H - 10, rx: 4 }),
          s('text', { x: Math.max(bx, x0) + 6, y: y + ROW_H / 2, dy: '0.35em', text: b.vc }, mode === 'host' && b.nodes > 1 ? [s('tspan', { text: ` ×${b.nodes}` })] : []),
        ]),
      );
    }
    g.append(bars);
    body.append(g);
  });
  children.push(body);
  if (now >= from && now <= to) {
    const nx = x(now);
    children.push(
      s('g', { class: 'now' }, [
        s('title', { text: `now: ${fullFmt.format(now)}` }),
        s('line', { x1: nx, x2: nx, y1: AXIS_H - 4, y2: height - 4 }),
        s('text', { x: nx + 4, y: AXIS_H - 2, text: 'now' }),
      ]),
    );
  }
  svg.replaceChildren(...children);
  return rows;
}
