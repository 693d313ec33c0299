/** HTTP basic credentials, as a URL's user info carries them (a type, not an interface: the registry client takes it as a string map). */
export type BasicAuth = {
  username: string;
  password: string;
};

/** The Authorization header for `auth`, or no header. */
export function basicAuthHeader(auth: BasicAuth | undefined): Record<string, string> {
  return auth ? { Authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` } : {};
}
