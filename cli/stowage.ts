#!/usr/bin/env node
/** The `stowage` executable. */
import { main } from './main.ts';

process.exitCode = await main(process.argv.slice(2), process.env);
