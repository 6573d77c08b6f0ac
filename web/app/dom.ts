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

/**
 * Puts `wanted` in `parent` in order, moving only what is out of place: elements that stay are not
 * touched, so focus, selection and scroll inside them survive a redraw.
 */
export function reconcile (parent: Element, wanted: Element[]): void {
  wanted.forEach((el, i) => {
    const at = parent.children[i]
    if (at !== el) parent.insertBefore(el, at ?? null)
  })
  while (parent.children.length > wanted.length) parent.lastElementChild?.remove()
}

/**
 * Elements by key: made once, and repainted (same element, new children) only when their content
 * signature changes, so a focused button stays focused while its content updates.
 */
export class Keyed<E extends Element = Element> {
  private readonly cache = new Map<string, { sig: string, el: E }>()

  get (key: string, sig: string, make: () => E, paint: (el: E) => void = () => {}): E {
    const hit = this.cache.get(key)
    if (hit != null && hit.sig === sig) return hit.el
    const el = hit?.el ?? make()
    paint(el)
    this.cache.set(key, { sig, el })
    return el
  }

  /** Forgets every key not in `keep` (after a redraw). */
  prune (keep: Set<string>): void {
    for (const k of this.cache.keys()) if (!keep.has(k)) this.cache.delete(k)
  }
}
