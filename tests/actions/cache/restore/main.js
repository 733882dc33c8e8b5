// actions/cache/restore: the restore of ../restore.js, without a post step.
require('../restore.js');
