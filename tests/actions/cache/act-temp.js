// The one place the double departs from @actions/cache, for what act does differently: act
// gives every job a RUNNER_TEMP at a new random path (~/.cache/act/<random>/tmp), where a
// GitHub-hosted runner has the same one in every run (/home/runner/work/_temp). The library
// hashes the paths as written into the cache's version, which must match to restore, so a
// path under RUNNER_TEMP could never be restored under act, though it is on GitHub. Here
// that prefix enters the version as `$RUNNER_TEMP`, the same in every run, as on GitHub.
// What is archived and where it is extracted are untouched.
const utils = require('@actions/cache/lib/internal/cacheUtils');

const temp = process.env.RUNNER_TEMP;
const original = utils.getCacheVersion;
const asWritten = (p) => (temp && (p === temp || p.startsWith(`${temp}/`)) ? `$RUNNER_TEMP${p.slice(temp.length)}` : p);
utils.getCacheVersion = (paths, ...rest) => original(paths.map(asWritten), ...rest);
