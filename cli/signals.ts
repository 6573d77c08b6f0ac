/**
 * Resolves on the first SIGINT or SIGTERM, so a long-running command can stop its node cleanly.
 * The handlers stay installed: a second signal while stopping exits at once (130), as users expect
 * of a second Ctrl-C.
 */
export async function untilSignal (): Promise<NodeJS.Signals> {
  return await new Promise(resolve => {
    let received = false
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
  })
}
