/**
 * What the server answers when it refuses: an HTTP status, a stable code a
 * client can branch on, and a sentence for the operator. The table of codes
 * is in docs/server-api.md.
 */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  /** Extra response headers: Retry-After for 429 and 503, Allow for 405. */
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

export const notFound = (what: string): ApiError => new ApiError(404, 'not-found', `${what} does not exist`);
export const noRepository = (repo: string): ApiError => new ApiError(404, 'no-repository', `repository ${repo} does not exist (create it with POST)`);
