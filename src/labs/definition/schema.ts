/**
 * The lab.yaml schema (schemaVersion 1). Every message starts with "expected …"; the problem
 * formatter (problems.ts) appends ", got <what was found>" and the file:line:col of the node.
 * Unknown keys are errors everywhere (strict objects). Defaults make a one-machine lab ~10 lines:
 *
 *   schemaVersion: 1
 *   title: Linux shell basics
 *   machines:
 *     - name: box
 *       image: debian-12
 *
 * A VM's image is a name from the image catalog (src/images), the same on every backend; validateLab
 * checks the name against the catalog. A container's image is an OCI image reference.
 */
import { z } from 'zod';
import { imageNameProblem } from '../../images/ImageCatalog.js';

export const SCHEMA_VERSION = 1;

/** DNS-1123 label, short enough to prefix with instance ids in backend resource names. */
export const NAME_RE = /^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$/;
export const STEP_ID_RE = /^[a-z0-9]([-a-z0-9_]{0,62})$/;
const nameMsg = 'expected a lowercase name (a-z, 0-9 and "-", starting with a letter, at most 32 characters)';

const str = (what = 'a string') => z.string({ invalid_type_error: `expected ${what}`, required_error: `expected ${what}` });
const name = str('a name').regex(NAME_RE, { message: nameMsg });
const int = (min: number, max: number) =>
  z
    .number({ invalid_type_error: `expected an integer from ${min} to ${max}`, required_error: `expected an integer from ${min} to ${max}` })
    .int({ message: `expected an integer from ${min} to ${max}` })
    .min(min, { message: `expected an integer from ${min} to ${max}` })
    .max(max, { message: `expected an integer from ${min} to ${max}` });
const bool = z.boolean({ invalid_type_error: 'expected true or false' });

/** "512Mi", "2Gi" → MiB. */
export function quantityMiB(q: string): number {
  const m = /^(\d+)(Mi|Gi)$/.exec(q);
  if (!m) throw new Error(`bad quantity ${q}`);
  return Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1);
}
const quantity = (example: string) =>
  str(`a "${example}"-style quantity`).regex(/^[1-9]\d{0,6}(Mi|Gi)$/, { message: `expected a "${example}"-style quantity (Mi or Gi)` });

const imageMsg = 'expected an image name such as debian-12 (one name from the image catalog for every backend; a container: an OCI image reference)';
const image = z.string({ invalid_type_error: imageMsg, required_error: imageMsg }).min(1, { message: imageMsg }).max(300, { message: 'expected at most 300 characters' });

export const CheckSchema = z
  .object({
    /** Machine to run on; may be omitted when the lab has one machine. */
    machine: name.optional(),
    /** A file in the lab folder (e.g. checks/files.sh), run with sh. */
    script: str('a file path such as checks/step.sh').optional(),
    /** A shell command line (templated with the lab's variables). */
    command: str('a shell command').optional(),
    timeoutSeconds: int(1, 600).default(30),
    /** Shown to the student when the check fails (templated). */
    hint: str().optional(),
    weight: z.number({ invalid_type_error: 'expected a number from 0 to 1000' }).min(0, { message: 'expected a number from 0 to 1000' }).max(1000, { message: 'expected a number from 0 to 1000' }).default(1),
  })
  .strict();

const StepGradingSchema = z
  .object({
    weight: z.number({ invalid_type_error: 'expected a number from 0 to 1000' }).min(0, { message: 'expected a number from 0 to 1000' }).max(1000, { message: 'expected a number from 0 to 1000' }).default(1),
    checks: z.array(CheckSchema, { invalid_type_error: 'expected a list of checks' }).default([]),
  })
  .strict();

export const MachineSchema = z
  .object({
    name,
    kind: z.enum(['vm', 'container'], { message: 'expected one of vm, container' }).default('vm'),
    /** vm: a name from the image catalog (debian-12, debian-12-desktop, an admin's own); container: an OCI image reference. */
    image,
    cpus: int(1, 16).default(1),
    memory: quantity('512Mi').default('512Mi'),
    disk: quantity('2Gi').optional(),
    /** vm: vnc and/or serial (default both); container: terminal (default). */
    consoles: z.array(z.enum(['vnc', 'serial', 'terminal'], { message: 'expected one of vnc, serial, terminal' }), { invalid_type_error: 'expected a list such as [serial, vnc]' }).min(1, { message: 'expected at least one console' }).optional(),
    /** Login: a fixed password, or generate: true (the default for VMs) for one per instance. Containers need none. */
    credentials: z
      .object({
        username: str('a user name').regex(/^[a-z_][a-z0-9_-]{0,31}$/, { message: 'expected a user name (a-z, 0-9, _ and -)' }).default('student'),
        password: str('a password').min(1, { message: 'expected a non-empty password' }).optional(),
        generate: bool.optional(),
      }, { invalid_type_error: 'expected a map such as { username: student, generate: true }' })
      .strict()
      .optional(),
    /** cloud-init user data, templated with the lab's variables ({{machines.NAME.password}} …). */
    userData: str('cloud-init user data text').optional(),
    /** TCP ports the other machines of the lab may reach (empty or absent = all). */
    ports: z.array(int(1, 65535), { invalid_type_error: 'expected a list of port numbers' }).optional(),
  }, { invalid_type_error: 'expected a machine (a map with name, image, …)' })
  .strict()
  .superRefine((m, ctx) => {
    const bad = (path: Array<string | number>, message: string) => ctx.addIssue({ code: 'custom', path, message });
    if (m.kind === 'vm') {
      const problem = imageNameProblem(m.image);
      if (problem) bad(['image'], problem);
      m.consoles?.forEach((c, i) => { if (c === 'terminal') bad(['consoles', i], 'expected vnc or serial for a vm'); });
    } else {
      if (!/^[a-z0-9][\w.\-/:@]*$/i.test(m.image)) bad(['image'], 'expected an OCI image reference such as docker.io/library/nginx:1.27-alpine');
      m.consoles?.forEach((c, i) => { if (c !== 'terminal') bad(['consoles', i], 'expected terminal for a container'); });
      if (m.userData !== undefined) bad(['userData'], 'expected no cloud-init user data on a container machine');
      if (m.disk !== undefined) bad(['disk'], 'expected no disk on a container machine');
    }
    if (m.credentials?.password !== undefined && m.credentials.generate) bad(['credentials', 'generate'], 'expected either a fixed password or generate: true, not both');
  });

export const LabSchema = z
  .object({
    schemaVersion: z.literal(SCHEMA_VERSION, { errorMap: () => ({ message: `expected ${SCHEMA_VERSION}` }) }),
    /** Optional; when present it must equal the folder name. */
    id: name.optional(),
    /** The author's label for this revision (free text); the catalog numbers versions itself. */
    version: z.preprocess((v) => (typeof v === 'number' ? String(v) : v), str('a version label').max(40, { message: 'expected at most 40 characters' })).optional(),
    title: str('a title').min(1, { message: 'expected a title' }).max(120, { message: 'expected at most 120 characters' }),
    description: str('a description').max(2000, { message: 'expected at most 2000 characters' }).default(''),
    tags: z.array(str('a tag').max(40, { message: 'expected at most 40 characters' }), { invalid_type_error: 'expected a list of tags' }).default([]),
    durationMinutes: int(1, 1440).default(30),
    machines: z.array(MachineSchema, { invalid_type_error: 'expected a list of machines', required_error: 'expected a list of machines' }).min(1, { message: 'expected at least one machine' }).max(8, { message: 'expected at most 8 machines' }),
    network: z.object({ internetEgress: bool.default(false) }, { invalid_type_error: 'expected a map such as { internetEgress: false }' }).strict().default({}),
    lifetime: z
      .object({
        maxMinutes: int(5, 10_080).default(120),
        idleMinutes: int(1, 10_080).default(30),
        pausable: bool.default(true),
        warnBeforeMinutes: int(0, 1440).default(10),
        /** Days a stopped lab keeps its machines' disks (the activity and the operator may shorten it). */
        keepDays: int(1, 365).default(7),
      }, { invalid_type_error: 'expected a map such as { maxMinutes: 120 }' })
      .strict()
      .default({}),
    /** The language of instructions/*.md; translations live in instructions/<language>/ with the same file names. */
    language: str('a language tag such as en or pt-BR').regex(/^[a-z]{2,3}(-[A-Z]{2})?$/, { message: 'expected a language tag such as en or pt-BR' }).default('en'),
    /** Page files under instructions/, in order; default: every instructions/*.md sorted by name. */
    instructions: z.array(str('a file name such as 01-intro.md').regex(/^[\w.-]+\.md$/, { message: 'expected a file name such as 01-intro.md' }), { invalid_type_error: 'expected a list of page files' }).min(1, { message: 'expected at least one page' }).optional(),
    grading: z
      .object({
        mode: z.enum(['steps', 'checks'], { message: 'expected one of steps, checks' }).default('steps'),
        maxScore: z.number({ invalid_type_error: 'expected a number from 1 to 1000' }).min(1, { message: 'expected a number from 1 to 1000' }).max(1000, { message: 'expected a number from 1 to 1000' }).default(100),
        /** Run every step's checks in the background this often (mode checks). */
        checkEverySeconds: int(10, 3600).optional(),
        /** Per step id (the ids in the instructions): weight and checks. */
        steps: z.record(str('a step id').regex(STEP_ID_RE, { message: 'expected a step id (a-z, 0-9, - and _)' }), StepGradingSchema, { invalid_type_error: 'expected a map of step id → { weight, checks }' }).default({}),
      }, { invalid_type_error: 'expected a map such as { mode: steps }' })
      .strict()
      .default({}),
  }, { invalid_type_error: 'expected a lab definition (a YAML map)' })
  .strict()
  // duplicate machine names are checked on the raw document (validateLab), so they are reported with every other problem
  .superRefine((lab, ctx) => {
    if (lab.lifetime.idleMinutes > lab.lifetime.maxMinutes) ctx.addIssue({ code: 'custom', path: ['lifetime', 'idleMinutes'], message: `expected at most maxMinutes (${lab.lifetime.maxMinutes})` });
    if (lab.lifetime.warnBeforeMinutes >= lab.lifetime.maxMinutes) ctx.addIssue({ code: 'custom', path: ['lifetime', 'warnBeforeMinutes'], message: `expected less than maxMinutes (${lab.lifetime.maxMinutes})` });
  });

export type LabYaml = z.infer<typeof LabSchema>;
export type MachineYaml = z.infer<typeof MachineSchema>;
export type CheckYaml = z.infer<typeof CheckSchema>;
