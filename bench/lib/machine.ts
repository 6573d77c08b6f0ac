/** What the numbers were measured on: they are only comparable on the same machine. */
import { cpus, totalmem, platform, release, arch } from 'node:os'

export interface Machine {
  cpuModel: string
  cores: number
  memoryGiB: number
  node: string
  os: string
  date: string
}

export function machine (): Machine {
  const list = cpus()
  return {
    cpuModel: list[0]?.model ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    os: `${platform()} ${release()} ${arch()}`,
    date: new Date().toISOString()
  }
}
