/**
 * The web app's files, as the server sends them: web/app/index.html, style.css, icon.svg, and
 * web/app/main.ts bundled by esbuild into one minified app.js. The bundle is made when the server
 * starts, in memory (about 100 ms; no build step to forget, no stale bundle, nothing written to the
 * package), and is the same for every request. Nothing is fetched from anywhere else at run time.
 */
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export interface WebAsset { type: string, body: Buffer }
export interface WebAssets {
  /** URL path -> file */
  files: Map<string, WebAsset>
  /** Bytes the browser loads for the page: html, css, js, icon. */
  totalBytes: number
}

export class WebAppMissingError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'WebAppMissingError'
  }
}

/** web/app beside cli/ in a checkout, or above dist/cli/ in an installed package. */
export function webAppDir (): string {
  for (const rel of ['../web/app/', '../../web/app/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url))
    if (existsSync(dir + 'main.ts')) return dir
  }
  throw new WebAppMissingError('the web app (web/app/) is missing from this installation')
}

/** The app's script, bundled and minified (exported for the size figure in tests). */
export async function bundleApp (dir = webAppDir()): Promise<string> {
  // loaded here, not at the top: only --web needs esbuild, and every other command starts without it
  const { build } = await import('esbuild')
  const out = await build({
    entryPoints: [dir + 'main.ts'],
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2022',
    write: false,
    legalComments: 'none',
    logLevel: 'silent'
  })
  return out.outputFiles[0].text
}

export async function loadWebAssets (): Promise<WebAssets> {
  const dir = webAppDir()
  const files = new Map<string, WebAsset>([
    ['/', { type: 'text/html; charset=utf-8', body: readFileSync(dir + 'index.html') }],
    ['/style.css', { type: 'text/css; charset=utf-8', body: readFileSync(dir + 'style.css') }],
    ['/icon.svg', { type: 'image/svg+xml', body: readFileSync(dir + 'icon.svg') }],
    ['/app.js', { type: 'text/javascript; charset=utf-8', body: Buffer.from(await bundleApp(dir)) }]
  ])
  let totalBytes = 0
  for (const f of files.values()) totalBytes += f.body.length
  return { files, totalBytes }
}
