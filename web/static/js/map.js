// The overlay map: sites on a circle, links between them coloured and
// dashed by state, labelled with their cost.

import { circleLayout, formatCost, natural } from './layout.js';
import { s } from './svg.js';

const W = 640;
const H = 440;
const R_SITE = 30;

/** Draws the topology (GET /api/v1/topology) into the <svg> element. */
export function renderMap(svg, topo) {
  const sites = [...(topo.sites || [])].sort((a, b) => natural(a.name, b.name));
  const links = topo.links || [];
  const pos = new Map();
  circleLayout(sites.length, W / 2, H / 2, Math.min(W, H) / 2 - R_SITE - 40).forEach((p, i) => pos.set(sites[i].name, p));
  const up = links.filter((l) => l.up).length;
  const live = sites.filter((x) => x.live).length;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const title = s('title', { id: 'map-title', text: 'Overlay map' });
  const desc = s('desc', {
    id: 'map-desc',
    text: `${sites.length} sites (${live} live), ${links.length} links (${up} up, ${links.length - up} down). The tables below list the same.`,
  });
  const children = [title, desc];
  if (!sites.length) {
    children.push(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty', text: 'No site has joined the federation yet.' }));
    svg.replaceChildren(...children);
    return;
  }
  const gl = s('g', { class: 'links' });
  const labels = s('g', { class: 'link-labels' });
  for (const l of links) {
    const a = pos.get(l.a);
    const b = pos.get(l.b);
    if (!a || !b) continue;
    const state = l.up ? 'up' : 'down';
    const cost = formatCost(l.cost_us);
    const what = `${l.a} – ${l.b}: ${state}, cost ${cost}${l.measured ? '' : ' (assumed: not measured yet)'}`;
    gl.append(
      s('g', { class: `link ${state}${l.measured ? '' : ' assumed'}`, 'data-link': `${l.a}~${l.b}`, 'data-state': state }, [
        s('title', { text: what }),
        s('line', { x1: a.x, y1: a.y, x2: b.x, y2: b.y }),
      ]),
    );
    const mx = (a.x + b.x) / 2;
    const my = (a.y + b.y) / 2;
    const label = (l.measured ? '' : '~') + cost + (l.up ? '' : ' · down');
    // A plate under the label so the line does not run through it (the
    // width is estimated: 7.5 px per character at 13 px bold).
    const w = label.length * 7.5 + 14;
    labels.append(
      s('rect', { class: `cost-bg ${state}`, x: mx - w / 2, y: my - 11, width: w, height: 22, rx: 11 }),
      s('text', { x: mx, y: my, dy: '0.35em', 'text-anchor': 'middle', class: `cost ${state}`, 'data-link': `${l.a}~${l.b}`, text: label }),
    );
  }
  const gs = s('g', { class: 'sites' });
  for (const site of sites) {
    const p = pos.get(site.name);
    const state = site.live ? 'live' : 'offline';
    const tip = [`site ${site.name}: ${site.live ? 'live' : 'offline (no peer session)'}`];
    if (site.gateway) tip.push(`gateway ${site.gateway}`);
    if (site.peer && site.peer.version) tip.push(`peer ${site.peer.version}`);
    gs.append(
      s('g', { class: `site ${state}`, 'data-site': site.name, transform: `translate(${p.x} ${p.y})` }, [
        s('title', { text: tip.join(', ') }),
        s('circle', { r: R_SITE }),
        s('text', { class: 'site-name', 'text-anchor': 'middle', dy: '0.35em', text: site.name }),
        s('text', { class: 'site-state', 'text-anchor': 'middle', y: R_SITE + 16, text: state }),
      ]),
    );
  }
  children.push(gl, labels, gs);
  svg.replaceChildren(...children);
}
