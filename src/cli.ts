/**
 * The one entry point: `lab-orchestrator <command> [options]`. Each command is a small module
 * with its own --help; later features add theirs to COMMANDS.
 */
import { loadConfig } from './config.js';
import { AppError, ConfigError } from './errors.js';
import type { Command } from './cli/command.js';
import { platformCommand } from './cli/platformCommand.js';

export type { Command } from './cli/command.js';

const serve: Command = {
  summary: 'Start the tool (HTTP server, database, lab backends).',
  usage: `lab-orchestrator serve

Starts the tool with configuration from the environment (see README "Configuration").
With no MONGODB_URI, an embedded FerretDB is started under DATA_DIR.
Stops gracefully on SIGTERM or SIGINT.`,
  async run() {
    const { startTool } = await import('./main.js');
    const config = loadConfig();
    const tool = await startTool(config);
    const hint = tool.devPlatform ? `  (it opens the demo course: click "Launch as student")\n` : '';
    // the registration URL carries a key: printed for the demo on its own terminal, never in production (stdout is a log there)
    const reg = config.LAB_MODE === 'demo' ? `LTI registration URL (paste into Moodle): ${await tool.lti.registrationUrl()}\n` : `LTI registration URL: open ${tool.publicUrl}/admin/lti#token=<ADMIN_TOKEN>\n`;
    process.stdout.write(`\nLab Orchestrator is running: open ${tool.publicUrl}/\n${hint}${reg}\n`);
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      if (++signals > 1) process.exit(1);
      void tool.shutdown(sig).then(() => process.exit(0));
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    return new Promise<number>(() => {}); // runs until a signal
  },
};

const validate: Command = {
  summary: 'Check lab definitions (lab.yaml, instructions, media); prints every problem.',
  usage: `lab-orchestrator validate [dir]

Validates every lab folder under dir (default: TEMPLATES_DIR, i.e. the repository's templates/),
VM image names against the image catalog (images/catalog.yaml plus the IMAGE_CATALOG file).
Prints one line per problem, "file:line:col path: expected …, got …", and exits 1 if there is any;
prints nothing and exits 0 when every lab is valid.`,
  async run(args) {
    const { validateDir } = await import('./labs/definition/readLabs.js');
    const { resolveTemplatesDir } = await import('./labs/definition/templatesDir.js');
    const arg = args.find((a) => !a.startsWith('-'));
    const display = arg ?? process.env.TEMPLATES_DIR ?? 'templates';
    const dir = arg ? arg : resolveTemplatesDir(display);
    const { ImageCatalog } = await import('./images/ImageCatalog.js');
    let images;
    try {
      images = ImageCatalog.load(process.env.IMAGE_CATALOG || undefined);
    } catch (err) {
      process.stdout.write(`${(err as Error).message}\n`);
      return 1;
    }
    const res = await validateDir(dir, display, images);
    for (const p of res.problems) process.stdout.write(`${p}\n`);
    return res.problems.length ? 1 : 0;
  },
};

export const COMMANDS: Record<string, Command> = { serve, validate, platform: platformCommand };

function help(): string {
  const rows = Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(20)} ${c.summary}`);
  return `Usage: lab-orchestrator <command> [options]\n\nCommands:\n${rows.join('\n')}\n\nRun "lab-orchestrator <command> --help" for a command's options.\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(help());
    return name ? 0 : 1;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    process.stderr.write(`Unknown command "${name}".\n\n${help()}`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(cmd.usage + '\n');
    return 0;
  }
  try {
    return await cmd.run(args);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof AppError) {
      process.stderr.write(`${err.message}\n`);
      return 78; // EX_CONFIG
    }
    throw err;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`lab-orchestrator: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  },
);
