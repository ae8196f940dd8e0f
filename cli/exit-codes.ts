/**
 * The one place where errors become exit statuses. docs/exit-codes.md lists
 * the same table; test/exit-codes.test.ts checks that the two agree.
 */
import type { ErrorCode } from '../core/errors.ts';

export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  PARTIAL: 3,
  REPO_NOT_FOUND: 10,
  LOCKED: 11,
  WRONG_PASSWORD: 12,
  INTEGRITY: 13,
  BACKEND: 14,
  REFUSED: 15,
  NO_SPACE: 16,
  DOCKER: 17,
  SERVER_IDENTITY: 18,
  STALE: 19,
  INTERRUPTED: 130,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** What each exit status means, for --help and the docs. */
export const EXIT_MEANINGS: Record<ExitCode, string> = {
  0: 'success',
  1: 'failure (see the message)',
  2: 'usage error: bad option, argument or configuration, or no passphrase given',
  3: 'partial: the run finished, but some entries could not be read or restored (they are listed)',
  10: 'no repository at the given location',
  11: 'the repository is locked by another operation',
  12: 'wrong passphrase, or a write-only key used where a full key is needed',
  13: 'integrity error: data is damaged, tampered with or missing (the message names the object)',
  14: 'the repository cannot be reached (network, server down); retrying later may work',
  15: 'the server refused: credential, permission or quota',
  16: 'no space left on the disk being written',
  17: 'the Docker Engine failed or cannot be reached',
  18: "the server's TLS certificate is not the pinned one (or not trusted): nothing was sent",
  19: 'status: a job has not succeeded within --max-age',
  130: 'interrupted (SIGINT or SIGTERM)',
};

export function exitCodeFor(code: ErrorCode): ExitCode {
  switch (code) {
    case 'ERR_USAGE':
    case 'ERR_NO_PASSWORD':
    case 'ERR_CONFIG':
    case 'ERR_SNAPSHOT':
    case 'ERR_REPO_EXISTS':
      return EXIT.USAGE;
    case 'ERR_REPO_NOT_FOUND':
      return EXIT.REPO_NOT_FOUND;
    case 'ERR_LOCKED':
      return EXIT.LOCKED;
    case 'ERR_WRONG_PASSWORD':
    case 'ERR_WRITE_ONLY':
      return EXIT.WRONG_PASSWORD;
    case 'ERR_INTEGRITY':
    case 'ERR_UNSAFE_PATH':
    case 'ERR_NOT_FOUND':
    case 'ERR_FORMAT':
    case 'ERR_OBJECT_EXISTS':
      return EXIT.INTEGRITY;
    case 'ERR_BACKEND':
      return EXIT.BACKEND;
    case 'ERR_FORBIDDEN':
    case 'ERR_QUOTA':
      return EXIT.REFUSED;
    case 'ERR_NO_SPACE':
      return EXIT.NO_SPACE;
    case 'ERR_DOCKER':
      return EXIT.DOCKER;
    case 'ERR_SERVER_IDENTITY':
      return EXIT.SERVER_IDENTITY;
    case 'ERR_INTERRUPTED':
      return EXIT.INTERRUPTED;
  }
}
