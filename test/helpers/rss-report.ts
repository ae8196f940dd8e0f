/**
 * Loaded into the CLI with NODE_OPTIONS=--import=…: at exit, writes the
 * process's peak resident set (getrusage ru_maxrss, all threads included)
 * in KiB to the file named by STOWAGE_TEST_RSS_FILE.
 */
import { writeFileSync } from 'node:fs';

const out = process.env['STOWAGE_TEST_RSS_FILE'];
if (out) process.on('exit', () => writeFileSync(out, String(process.resourceUsage().maxRSS)));
