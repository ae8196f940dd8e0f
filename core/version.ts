/** The program's version, from package.json, for snapshots and --version. */
import pkg from '../package.json' with { type: 'json' };

export const PROGRAM_VERSION: string = pkg.version;
