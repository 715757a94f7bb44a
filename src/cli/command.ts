/** A CLI command: one small module with its own --help. */
export interface Command {
  summary: string;
  usage: string;
  /** Returns the process exit code. */
  run(args: string[]): Promise<number>;
}
