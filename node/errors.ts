/** A problem the user can fix (bad flag, bad key file, unknown nick): the CLI prints it as one line, no stack. */
export class UserError extends Error {
  readonly code: string
  constructor (message: string, code: string) {
    super(message)
    this.name = 'UserError'
    this.code = code
  }
}
