// Small DOM helpers: elements in the HTML or SVG namespace, built with
// attributes and children (text is always set as text, never as markup).

const SVGNS = 'http://www.w3.org/2000/svg';

function build(e, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = String(v);
    else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of [].concat(children || [])) {
    if (c === null || c === undefined || c === false) continue;
    e.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
  return e;
}

/** An SVG element. */
export function s(tag, attrs, children) {
  return build(document.createElementNS(SVGNS, tag), attrs, children);
}

/** An HTML element. */
export function h(tag, attrs, children) {
  return build(document.createElement(tag), attrs, children);
}

/** Replaces an element's children. */
export function fill(el, children) {
  el.replaceChildren(...[].concat(children).filter((c) => c !== null && c !== undefined && c !== false));
}
