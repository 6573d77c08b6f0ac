/**
 * Building the page without HTML strings: `h(tag, attrs, ...children)` makes an element; a string
 * child becomes a text node, so text from the network is always shown as text. There is no way
 * through here to set innerHTML, a URL attribute or an inline handler from a string; the server's
 * Content-Security-Policy also requires Trusted Types, so a stray innerHTML would throw.
 */
export type Child = Node | string | null | undefined | false

type Attr = string | number | boolean | undefined | null | ((e: Event) => void)

/** Attributes a caller may set (no href, src, srcdoc, style, on* strings). */
const ATTRS = new Set(['class', 'id', 'type', 'title', 'placeholder', 'role', 'dir', 'name', 'autocomplete', 'maxlength',
  'rows', 'method', 'tabindex', 'datetime', 'for', 'hidden', 'disabled', 'spellcheck', 'enterkeyhint', 'inputmode'])

export function h<K extends keyof HTMLElementTagNameMap> (tag: K, attrs: Record<string, Attr> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue
    if (typeof v === 'function') { el.addEventListener(k.replace(/^on/, '').toLowerCase(), v); continue }
    if (!ATTRS.has(k) && !k.startsWith('data-') && !k.startsWith('aria-')) throw new Error(`attribute ${k} is not allowed`)
    el.setAttribute(k, v === true ? '' : String(v))
  }
  append(el, children)
  return el
}

export function append (el: Element, children: Child[]): void {
  for (const c of children) {
    if (c == null || c === false) continue
    el.append(typeof c === 'string' ? document.createTextNode(c) : c)
  }
}

/** Replaces an element's children. */
export function fill (el: Element, ...children: Child[]): void {
  el.replaceChildren()
  append(el, children)
}
