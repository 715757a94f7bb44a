/**
 * The one configuration schema. Read once, in the composition root, from the environment.
 * Every key is documented in README.md ("Configuration"); keep the two in step.
 */
import { z } from 'zod';
import path from 'node:path';
import os from 'node:os';
import { ConfigError } from './errors.js';

/** "true"/"false"/"1"/"0"/"yes"/"no" — never Boolean("false"). */
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'expected true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max: number) =>
  z
    .string()
    .regex(/^-?\d+$/, { message: `expected an integer from ${min} to ${max}` })
    .transform(Number)
    .pipe(z.number().int().min(min, { message: `expected at least ${min}` }).max(max, { message: `expected at most ${max}` }));
const url = z.string().url({ message: 'expected an absolute URL such as https://labs.example.edu' });

/** Default cache for tools we build (FerretDB, guest images, control plane): outside the clone. */
export function defaultToolsDir(): string {
  return process.env.LAB_TOOLS_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'lab-orchestrator');
}

const schema = z
  .object({
    LAB_MODE: z.enum(['demo', 'production'], { message: 'expected "demo" or "production"' }).default('production'),
    HOST: z.string().min(1).default('127.0.0.1'),
    PORT: int(0, 65535).default('3000'),
    PUBLIC_URL: url.optional(),
    TRUST_PROXY: bool.default('false'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    LOG_FORMAT: z.enum(['json', 'pretty'], { message: 'expected "json" or "pretty"' }).default('json'),
    DATA_DIR: z.string().min(1).default('.data'),
    MONGODB_URI: z
      .string()
      .regex(/^mongodb(\+srv)?:\/\//, { message: 'expected a mongodb:// or mongodb+srv:// URI' })
      .optional(),
    /** Connections to the database per process. Unset = 20 on FerretDB (see store/database.ts), the driver's default on MongoDB. */
    MONGODB_MAX_POOL_SIZE: int(1, 10_000).optional(),
    FERRETDB_BIN: z.string().min(1).optional(),
    /** The embedded FerretDB's SQLite `synchronous`: normal = a commit survives a crash of the process, full = a power loss too (an fsync per write). */
    FERRETDB_SYNCHRONOUS: z.enum(['normal', 'full'], { message: 'expected "normal" or "full"' }).default('normal'),
    SHUTDOWN_GRACE_MS: int(0, 600_000).default('10000'),
    SWEEP_INTERVAL_MS: int(100, 3_600_000).default('30000'),
    RECONCILE_INTERVAL_MS: int(100, 3_600_000).default('15000'),
    WARM_LEAD_MINUTES: int(0, 1440).default('10'),
    TEMPLATES_DIR: z.string().min(1).default('templates'),
    // --- keeping stopped labs (days; GiB) ---
    /** The longest a stopped lab keeps its disks, whatever a lab or a teacher asks. */
    LAB_MAX_KEEP_DAYS: int(1, 3650).default('30'),
    /** Warn the student this many days before a stopped lab's disks are deleted. */
    LAB_KEEP_WARN_DAYS: int(0, 365).default('2'),
    /** The total disk size stopped labs may keep; a stop past it is refused (the lab keeps running). Unset = no total. */
    LAB_MAX_STOPPED_STORAGE_GIB: int(1, 10_000_000).optional(),
    ADMIN_TOKEN: z.string().min(16, { message: 'expected at least 16 characters' }).optional(),
    OPERATOR_USERS: z
      .string()
      .regex(/^\s*https?:\/\/[^#,\s]+#[^,]+(,\s*https?:\/\/[^#,\s]+#[^,]+)*\s*$/, { message: 'expected comma-separated <issuer>#<user id>, e.g. https://moodle.example.edu#2' })
      .optional(),
    SECRET_KEY: z.string().min(32, { message: 'expected at least 32 characters' }).optional(),
    METRICS_PORT: int(0, 65535).optional(),
    METRICS_HOST: z.string().min(1).default('127.0.0.1'),
    METRICS_TOKEN: z.string().min(16, { message: 'expected at least 16 characters' }).optional(),
    DEV_PLATFORM: bool.optional(),
    GRADE_RETRY_BASE_MS: int(10, 3_600_000).default('2000'),
    GRADE_RETRY_MAX_MS: int(10, 86_400_000).default('600000'),
    // --- backend (QEMU) ---
    QEMU_BIN: z.string().min(1).default('qemu-system-x86_64'),
    QEMU_ACCEL: z.enum(['auto', 'kvm', 'tcg'], { message: 'expected "auto", "kvm" or "tcg"' }).default('auto'),
    GUEST_IMAGE_DIR: z.string().min(1).optional(),
    /** An admin's image catalog file (images/catalog.yaml format): adds images or overrides fields of the built-in ones. */
    IMAGE_CATALOG: z.string().min(1).optional(),
    QEMU_MAX_VMS: int(0, 10_000).default('8'),
    QEMU_MAX_MEMORY_MIB: int(0, 16_777_216).default('4096'),
    /** Start Debian machines from saved running states (seconds instead of a cold boot). */
    QEMU_SAVED_STATES: bool.default('true'),
    DEV_PLATFORM_REGISTER: bool.optional(),
    LTI_CLOCK_SKEW_SECONDS: int(0, 300).default('5'),
    LTI_JWKS_MIN_REFETCH_MS: int(0, 3_600_000).default('30000'),
    TICKET_TTL_SECONDS: int(1, 60).default('30'),
    WS_MAX_PAYLOAD_BYTES: int(1024, 64 * 1024 * 1024).default('1048576'),
    WS_PING_INTERVAL_MS: int(100, 600_000).default('20000'),
    WS_IDLE_TIMEOUT_MS: int(1000, 86_400_000).default('1800000'),
    WS_MAX_PER_USER: int(1, 1000).default('8'),
    /** A socket's seat in WS_MAX_PER_USER outlives a replica that died by at most this (renewed every third of it). */
    WS_SEAT_TTL_MS: int(3000, 3_600_000).default('90000'),
    // --- rate limits (per minute; a burst of the same size passes) ---
    RATE_LAUNCH_PER_USER: int(1, 100_000).default('10'),
    RATE_LAUNCH_PER_PLATFORM: int(1, 1_000_000).default('600'),
    RATE_TICKET_PER_USER: int(1, 100_000).default('60'),
    RATE_TICKET_PER_PLATFORM: int(1, 1_000_000).default('2400'),
    RATE_CHECK_PER_PLATFORM: int(1, 1_000_000).default('600'),
    // --- checks ---
    CHECK_RATE_PER_MINUTE: int(1, 10_000).default('10'),
    CHECK_OUTPUT_MAX_BYTES: int(1024, 16 * 1024 * 1024).default('65536'),
    CHECK_BACKGROUND_TICK_MS: int(100, 3_600_000).default('5000'),
    // --- backend: kubevirt ---
    BACKEND: z.enum(['qemu', 'kubevirt'], { message: 'expected "qemu" or "kubevirt"' }).default('qemu'),
    KUBECONFIG: z.string().min(1).optional(),
    KUBEVIRT_SUBRESOURCE_URL: url.optional(),
    KUBEVIRT_TOOL_NAMESPACE: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, { message: 'expected a namespace name' }).default('lab-orchestrator'),
    KUBEVIRT_SERVICE_ACCOUNT: z.string().min(1).default('lab-orchestrator'),
    KUBEVIRT_API_SERVER_CIDRS: z
      .string()
      .regex(/^[0-9a-fA-F.:/]+(,[0-9a-fA-F.:/]+)*$/, { message: 'expected comma-separated CIDRs such as 203.0.113.10/32' })
      .optional(),
    KUBEVIRT_QPS: int(50, 10_000).default('100'),
    KUBEVIRT_BURST: int(50, 100_000).default('600'),
    KUBEVIRT_BOOT_TIMEOUT_MS: int(1000, 3_600_000).default('600000'),
    KUBEVIRT_IMAGE_NAMESPACE: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, { message: 'expected a namespace name' }).default('lab-images'),
    KUBEVIRT_STORAGE_CLASS: z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, { message: 'expected a storage class name' }).optional(),
    KUBEVIRT_MAX_LAB_STORAGE_GIB: int(1, 100_000).optional(),
    /** What the operator lets the tool run at once on the cluster (labs over it wait in the capacity queue). */
    KUBEVIRT_MAX_VMS: int(1, 1_000_000).optional(),
    KUBEVIRT_MAX_MEMORY_MIB: int(1, 1_000_000_000).optional(),
    LEASE_DURATION_MS: int(2000, 600_000).default('15000'),
    POD_NAME: z.string().min(1).optional(),
    /** With several replicas (BACKEND=kubevirt): how often a replica reads the lab events the others published (0 = never). */
    LAB_EVENT_POLL_MS: int(0, 60_000).default('1000'),
  })
  .superRefine((c, ctx) => {
    if (c.LAB_MODE === 'production') {
      if (!c.PUBLIC_URL) ctx.addIssue({ code: 'custom', path: ['PUBLIC_URL'], message: 'required when LAB_MODE=production' });
      if (!c.SECRET_KEY) ctx.addIssue({ code: 'custom', path: ['SECRET_KEY'], message: 'required when LAB_MODE=production (32+ random characters)' });
    }
  });

type Raw = z.infer<typeof schema>;
export type Config = Raw & {
  /** Where built tools (FerretDB, guest images, control plane) are cached. */
  TOOLS_DIR: string;
};

/** Keys whose values are never printed. */
const SECRET_KEYS = /SECRET|TOKEN|PASSWORD|_KEY$/;

/**
 * Parse the environment into a Config. On any bad value, throws a ConfigError whose message
 * names every bad key, what was expected and what was found (secrets shown as [redacted]).
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const input: Record<string, string> = {};
  for (const key of Object.keys(schema.innerType().shape)) {
    const v = env[key];
    if (v !== undefined && v !== '') input[key] = v;
  }
  const res = schema.safeParse(input);
  if (!res.success) {
    const lines = res.error.issues.map((i) => {
      const key = String(i.path[0] ?? '(config)');
      const found = key in input ? ` (got ${SECRET_KEYS.test(key) ? '[redacted]' : JSON.stringify(input[key])})` : '';
      return `  ${key}: ${i.message}${found}`;
    });
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const c = res.data;
  return {
    ...c,
    ...(c.PUBLIC_URL ? { PUBLIC_URL: c.PUBLIC_URL.replace(/\/+$/, '') } : {}),
    TOOLS_DIR: defaultToolsDir(),
  };
}

/** A copy safe to log: secret values replaced, credentials stripped from URIs. */
export function redact(config: Config): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) {
    if (v === undefined) continue;
    if (SECRET_KEYS.test(k)) out[k] = '[redacted]';
    else if (typeof v === 'string' && /^[a-z+]+:\/\/[^/]*@/.test(v)) out[k] = v.replace(/\/\/[^/@]*@/, '//[redacted]@');
    else out[k] = v;
  }
  return out;
}
