/**
 * Waits until `predicate` holds, checking every `intervalMs`, or fails after `timeoutMs`. Bounded,
 * never a fixed sleep. `what` may be a function so the failure can describe the state at that moment.
 */
export async function waitFor (predicate: () => boolean | Promise<boolean>, what: string | (() => string), timeoutMs = 20_000, intervalMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (true) {
    if (await predicate()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`)
    await new Promise(resolve => setTimeout(resolve, intervalMs))
  }
}

/** Rejects if `promise` does not settle within `ms`. */
export async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`${what} did not finish within ${ms} ms`)) }, ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
