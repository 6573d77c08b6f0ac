/**
 * The shape every benchmark reports in, and the three outputs: a text table, latest.json and
 * latest.svg. Each figure stands beside a baseline measured in the same run, with the ratio and the
 * target it is held to.
 */
import type { Machine } from './machine.ts'
import type { Summary } from './stats.ts'

export interface Measured {
  /** what was measured */
  name: string
  /** the headline number (a median unless `unit` says otherwise) */
  value: number
  /** the distribution behind `value`, when it came from repeated samples */
  stats?: Summary
  /** how many samples (packets, lookups, messages, runs) stand behind `value` */
  samples: number
}

export interface Figure {
  id: string
  section: string
  name: string
  unit: string
  figure: Measured
  baseline: Measured | null
  /** figure.value / baseline.value */
  ratio: number | null
  target: string
  /** true: met, false: missed, null: nothing to judge (context only) */
  pass: boolean | null
  notes?: string
}

export interface Report {
  mode: 'full' | 'quick'
  machine: Machine
  durationSeconds: number
  figures: Figure[]
  /** per-benchmark details that do not fit one row (series for the plots, settings) */
  details: Record<string, unknown>
}

export function ratio (figure: number, baseline: number | undefined): number | null {
  return baseline === undefined || baseline === 0 || !Number.isFinite(baseline) ? null : figure / baseline
}

function fmt (v: number | undefined | null): string {
  if (v == null || !Number.isFinite(v)) return '-'
  const a = Math.abs(v)
  if (a >= 10_000) return Math.round(v).toLocaleString('en-US')
  if (a >= 100) return v.toFixed(0)
  if (a >= 10) return v.toFixed(1)
  return v.toFixed(2)
}

function cell (m: Measured | null): string {
  if (m == null) return '-'
  if (m.stats != null && m.stats.n > 1) return `${fmt(m.stats.median)} (p95 ${fmt(m.stats.p95)}, n=${m.stats.n})`
  return `${fmt(m.value)} (n=${m.samples})`
}

/** The table as Markdown (it reads as plain text on a terminal too). */
export function table (figures: Figure[]): string {
  const rows = [['figure', 'unit', 'measured: median (p95, n)', 'baseline, same run', 'ratio', 'target', 'result']]
  for (const f of figures) {
    rows.push([
      f.name,
      f.unit,
      cell(f.figure),
      f.baseline == null ? '-' : `${f.baseline.name}: ${cell(f.baseline)}`,
      f.ratio == null ? '-' : f.ratio.toFixed(2),
      f.target,
      f.pass == null ? 'info' : f.pass ? 'PASS' : 'MISS'
    ])
  }
  const lines = rows.map(r => `| ${r.join(' | ')} |`)
  lines.splice(1, 0, `| ${rows[0].map(() => '---').join(' | ')} |`)
  return lines.join('\n')
}

// ---------------------------------------------------------------------------------------------
// SVG, drawn by hand: one panel per section, horizontal bars (median, p95 whisker) or lines.
// ---------------------------------------------------------------------------------------------

export interface Bar {
  label: string
  median: number
  p95?: number
  kind: 'figure' | 'baseline' | 'target'
}

export interface BarPanel {
  type: 'bars'
  title: string
  unit: string
  bars: Bar[]
  /** a vertical reference line (a target) */
  marker?: { value: number, label: string }
}

export interface LinePanel {
  type: 'lines'
  title: string
  xLabel: string
  yLabel: string
  /** x values are drawn on a log scale when `logX` */
  logX?: boolean
  series: Array<{ label: string, points: Array<[number, number]>, dashed?: boolean, color?: string }>
}

export type Panel = BarPanel | LinePanel

const COLORS = { figure: '#2b6cb0', baseline: '#a0aec0', target: '#dd6b20' }
const SERIES = ['#2b6cb0', '#38a169', '#dd6b20', '#805ad5', '#a0aec0', '#e53e3e']
const WIDTH = 960
const LABEL_W = 330
const BAR_H = 16
const GAP = 6

function esc (s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

function barPanel (p: BarPanel, y0: number): { svg: string, height: number } {
  const plotW = WIDTH - LABEL_W - 110
  const max = Math.max(...p.bars.map(b => Math.max(b.median, b.p95 ?? 0)), p.marker?.value ?? 0) || 1
  const x = (v: number): number => LABEL_W + (v / max) * plotW
  const parts: string[] = [`<text x="10" y="${y0 + 16}" class="title">${esc(p.title)}</text>`]
  let y = y0 + 28
  for (const b of p.bars) {
    parts.push(`<text x="${LABEL_W - 8}" y="${y + 12}" class="label" text-anchor="end">${esc(b.label)}</text>`)
    parts.push(`<rect x="${LABEL_W}" y="${y}" width="${Math.max(1, x(b.median) - LABEL_W).toFixed(1)}" height="${BAR_H}" fill="${COLORS[b.kind]}"/>`)
    if (b.p95 != null && b.p95 > b.median) {
      const ym = y + BAR_H / 2
      parts.push(`<line x1="${x(b.median).toFixed(1)}" y1="${ym}" x2="${x(b.p95).toFixed(1)}" y2="${ym}" class="whisker"/>`)
      parts.push(`<line x1="${x(b.p95).toFixed(1)}" y1="${y + 3}" x2="${x(b.p95).toFixed(1)}" y2="${y + BAR_H - 3}" class="whisker"/>`)
    }
    const tail = b.p95 != null && b.p95 > b.median ? `${fmt(b.median)} (p95 ${fmt(b.p95)})` : fmt(b.median)
    parts.push(`<text x="${(x(Math.max(b.median, b.p95 ?? 0)) + 6).toFixed(1)}" y="${y + 12}" class="value">${esc(tail)} ${esc(p.unit)}</text>`)
    y += BAR_H + GAP
  }
  if (p.marker != null) {
    const mx = x(p.marker.value).toFixed(1)
    parts.push(`<line x1="${mx}" y1="${y0 + 24}" x2="${mx}" y2="${y}" class="marker"/>`)
    parts.push(`<text x="${mx}" y="${y + 12}" class="markertext" text-anchor="middle">${esc(p.marker.label)}</text>`)
    y += 14
  }
  return { svg: parts.join('\n'), height: y - y0 + 12 }
}

function linePanel (p: LinePanel, y0: number): { svg: string, height: number } {
  const h = 200
  const left = 80
  const right = WIDTH - 240
  const top = y0 + 30
  const bottom = top + h
  const xs = p.series.flatMap(s => s.points.map(pt => pt[0]))
  const ys = p.series.flatMap(s => s.points.map(pt => pt[1]))
  const tx = (v: number): number => p.logX === true ? Math.log(v) : v
  const xMin = tx(Math.min(...xs))
  const xMax = tx(Math.max(...xs))
  const yMax = Math.max(...ys) * 1.1 || 1
  const X = (v: number): number => left + ((tx(v) - xMin) / ((xMax - xMin) || 1)) * (right - left)
  const Y = (v: number): number => bottom - (v / yMax) * h
  const parts: string[] = [`<text x="10" y="${y0 + 16}" class="title">${esc(p.title)}</text>`]
  parts.push(`<line x1="${left}" y1="${bottom}" x2="${right}" y2="${bottom}" class="axis"/><line x1="${left}" y1="${top}" x2="${left}" y2="${bottom}" class="axis"/>`)
  for (const xv of [...new Set(xs)].sort((a, b) => a - b)) {
    parts.push(`<text x="${X(xv).toFixed(1)}" y="${bottom + 14}" class="label" text-anchor="middle">${xv}</text>`)
  }
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4
    parts.push(`<text x="${left - 6}" y="${(Y(v) + 4).toFixed(1)}" class="label" text-anchor="end">${fmt(v)}</text>`)
  }
  parts.push(`<text x="${(left + right) / 2}" y="${bottom + 30}" class="label" text-anchor="middle">${esc(p.xLabel)}</text>`)
  parts.push(`<text x="14" y="${top - 6}" class="label">${esc(p.yLabel)}</text>`)
  p.series.forEach((s, i) => {
    const color = s.color ?? SERIES[i % SERIES.length]
    const d = s.points.map((pt, j) => `${j === 0 ? 'M' : 'L'}${X(pt[0]).toFixed(1)},${Y(pt[1]).toFixed(1)}`).join(' ')
    parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${s.dashed === true ? ' stroke-dasharray="5,4"' : ''}/>`)
    for (const pt of s.points) parts.push(`<circle cx="${X(pt[0]).toFixed(1)}" cy="${Y(pt[1]).toFixed(1)}" r="3" fill="${color}"/>`)
    const ly = top + 8 + i * 18
    parts.push(`<line x1="${right + 16}" y1="${ly}" x2="${right + 40}" y2="${ly}" stroke="${color}" stroke-width="2"${s.dashed === true ? ' stroke-dasharray="5,4"' : ''}/>`)
    parts.push(`<text x="${right + 46}" y="${ly + 4}" class="label">${esc(s.label)}</text>`)
  })
  return { svg: parts.join('\n'), height: h + 70 }
}

export function svg (panels: Panel[], caption: string): string {
  const bodies: string[] = []
  let y = 40
  for (const p of panels) {
    const drawn = p.type === 'bars' ? barPanel(p, y) : linePanel(p, y)
    bodies.push(drawn.svg)
    y += drawn.height + 10
  }
  const legend = `<rect x="${WIDTH - 330}" y="10" width="12" height="12" fill="${COLORS.figure}"/><text x="${WIDTH - 314}" y="20" class="label">p2pchat</text>` +
    `<rect x="${WIDTH - 250}" y="10" width="12" height="12" fill="${COLORS.baseline}"/><text x="${WIDTH - 234}" y="20" class="label">baseline (same run)</text>` +
    `<line x1="${WIDTH - 110}" y1="16" x2="${WIDTH - 92}" y2="16" class="whisker"/><text x="${WIDTH - 88}" y="20" class="label">to p95</text>`
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y + 10}" viewBox="0 0 ${WIDTH} ${y + 10}" font-family="sans-serif">
<style>
.title { font-size: 14px; font-weight: bold; fill: #1a202c }
.label { font-size: 11px; fill: #2d3748 }
.value { font-size: 11px; fill: #1a202c }
.whisker { stroke: #1a202c; stroke-width: 1.2 }
.marker { stroke: ${COLORS.target}; stroke-width: 1.5; stroke-dasharray: 4,3 }
.markertext { font-size: 11px; fill: ${COLORS.target} }
.axis { stroke: #4a5568; stroke-width: 1 }
</style>
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="20" class="label">${esc(caption)}</text>
${legend}
${bodies.join('\n')}
</svg>
`
}
