/**
 * SIGINT/SIGTERM handling for long-running commands. Call `watchSignals()` before doing anything
 * that announces readiness: a parent that reads "ready" may signal at once, and a signal that
 * arrives before a handler is installed kills the process without a clean stop (seen under load).
 * The handlers stay installed: a second signal while stopping exits at once (130), as users expect
 * of a second Ctrl-C.
 */
export interface SignalWatch {
  received: Promise<NodeJS.Signals>
}

export function watchSignals (): SignalWatch {
  let received = false
  let resolve: (sig: NodeJS.Signals) => void = () => {}
  const promise = new Promise<NodeJS.Signals>(res => { resolve = res })
  const onSignal = (sig: NodeJS.Signals): void => {
    if (received) {
      process.stderr.write(`p2pchat: second ${sig}, exiting now\n`)
      process.exit(130)
    }
    received = true
    resolve(sig)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  return { received: promise }
}

/** Resolves on the first SIGINT or SIGTERM from now on. Prefer watchSignals() before startup. */
export async function untilSignal (): Promise<NodeJS.Signals> {
  return await watchSignals().received
}
