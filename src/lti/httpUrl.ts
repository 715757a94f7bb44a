/** An absolute http(s) URL from untrusted input, or '' with a problem recorded (for "every problem at once" validation). */
export function httpUrl(v: unknown, what: string, problems: string[]): string {
  if (typeof v !== 'string' || !/^https?:\/\/[^\s]+$/.test(v)) {
    problems.push(`${what}: expected an absolute http(s) URL`);
    return '';
  }
  try {
    new URL(v);
    return v;
  } catch {
    problems.push(`${what}: not a URL`);
    return '';
  }
}
