package cikit

/**
 * Helpers shared by the ci-kit pipeline steps (vars/ciKit*.groovy).
 *
 * Nothing here decides anything about building, testing or promoting: ci-kit
 * does that, in Python. This class only knows
 *   - each step's named parameters and their defaults (PARAMETERS),
 *   - how they map to ci-kit's CI_KIT_* environment (environment()),
 *   - how to bind the index credentials (withIndex() for building and testing,
 *     withPromotion() for promoting) and, for `ci-kit image`, the registry's
 *     (withRegistry()),
 *   - which Git checkout the steps ask for (scmWithTags(), checkoutCommit()) and
 *     where job 2 is (jobPath()),
 *   - how to read the KEY=VALUE lines that `ci-kit ... --output FILE` writes
 *     (parseOutput()).
 * Plain loops, no closures over collections, only constructors and methods of
 * script-security's default allow-list (no `new LinkedHashMap(Map)`): the code
 * runs under Jenkins' CPS transformation and, for folder libraries, in the
 * script sandbox.
 */
class CiKit implements Serializable {

    private static final long serialVersionUID = 1L

    /** Parameters every step accepts, with their defaults. */
    static final Map<String, Object> COMMON = [
        indexUrl     : null,            // devpi URL; null: agent's CI_KIT_INDEX_URL, else ci-kit's default
        credentialsId: 'ci-kit-devpi',  // Jenkins "Username with password" credential; null: bind none
        ciKit        : 'ci-kit',        // the ci-kit command on the agent
        projectDir   : '.',             // the product's directory inside the workspace
        unstableIndex: null,            // USER/INDEX; null: ci-kit's default (<user>/unstable)
        testingIndex : null,            // USER/INDEX; null: ci-kit's default (<user>/testing)
        stableIndex  : null,            // USER/INDEX; null: ci-kit's default (<user>/stable)
    ]

    static final Map<String, Object> TEST = [
        pythonVersions: [],               // one parallel branch per X.Y; []: one branch, ci-kit's configured versions
        testCommand   : null,             // CI_KIT_TEST_COMMAND; null: ci-kit's default ("pytest")
        testExtras    : [],               // CI_KIT_TEST_EXTRAS
        junitDir      : 'ci-kit-results', // where ci-kit writes JUnit XML (a folder per branch), relative to projectDir
        promote       : true,             // false: test only, never promote
        agentLabel    : null,             // label of each test branch's node and the promotion's (ciKitPipeline: every stage's); null: any
        retries       : 0,                // extra attempts of a branch or the promotion after an agent/step error
        promoteCredentialsId: null,       // credential bound only around `ci-kit promote`; null: credentialsId
    ]

    /** Every step's parameters and defaults: the single source for the checks and the docs tests. */
    static final Map<String, Map<String, Object>> PARAMETERS = [
        ciKitBuildAndPush  : COMMON + [
            checkout      : true,   // `checkout scm` first
            triggerJob    : null,   // job 2's name: started with REQUIREMENT, COMMIT, INDEX_URL, UNSTABLE_INDEX
            waitForTrigger: false,  // wait for job 2 and take its result
            archive       : true,   // archive ci-kit's --output file as ci-kit-build-and-push.txt
        ],
        ciKitTestAndPromote: COMMON + [
            requirement: null,      // NAME==VERSION; null: build parameter REQUIREMENT
            commit     : null,      // commit to check out and test; null: build parameter COMMIT
            checkout   : true,      // check out `commit` (with the job's SCM) first
            archive    : true,      // archive the JUnit XML, promote's --output file (ci-kit-promote.txt), the report
        ] + TEST,
        ciKitImage         : COMMON + [
            requirement          : null,  // NAME==VERSION; null: build parameter REQUIREMENT, else ci-kit's choice
            push                 : null,  // REGISTRY/REPO to push to; null: build only
            registryCredentialsId: null,  // the registry's Username with password credential; null: agent's login
            archive              : true,  // archive ci-kit image's --output file as ci-kit-image.txt
        ],
        ciKitPipeline      : COMMON + [
            job           : 'both', // 'both', 'build-and-push' or 'test-and-promote'
            timeoutMinutes: 60,     // the whole build
            triggerJob    : null,   // job 'build-and-push' only: start this job 2
            waitForTrigger: false,
            image         : false,  // also run ciKitImage after promotion
            imagePush     : null,   // REGISTRY/REPO for ciKitImage's push
            registryCredentialsId: null,  // ciKitImage's registry login; null: the agent's own
            archive       : true,
        ] + TEST,
    ]

    /** The accepted values of ciKitPipeline's `job`. */
    static final List<String> JOBS = ['both', 'build-and-push', 'test-and-promote']

    /** Null when every key of args is a parameter of step, else a message naming the unknown ones. */
    static String checkParameters(String step, Map args) {
        Map<String, Object> known = PARAMETERS[step]
        List<String> unknown = []
        for (Object key in args.keySet()) {
            if (!known.containsKey(key)) {
                unknown.add(key.toString())
            }
        }
        if (unknown) {
            List<String> accepted = new ArrayList<String>(known.keySet())
            return "${step}: unknown parameter(s) ${unknown.sort()}; accepted: ${accepted.sort().join(', ')}" +
                " (see the step's help, vars/${step}.txt)"
        }
        return null
    }

    /** The defaults of step, overridden by args (a new map; a copy by loop: the sandbox rejects new LinkedHashMap(Map)). */
    static Map<String, Object> settings(String step, Map args) {
        Map<String, Object> defaults = PARAMETERS[step]
        Map<String, Object> cfg = [:]
        for (Object key in defaults.keySet()) {
            cfg[key.toString()] = defaults[key]
        }
        for (Object key in args.keySet()) {
            cfg[key.toString()] = args[key]
        }
        return cfg
    }

    /** The entries of cfg that are parameters of step. */
    static Map<String, Object> forStep(String step, Map cfg) {
        Map<String, Object> known = PARAMETERS[step]
        Map<String, Object> picked = [:]
        for (Object key in cfg.keySet()) {
            if (known.containsKey(key)) {
                picked[key.toString()] = cfg[key]
            }
        }
        return picked
    }

    /**
     * ci-kit's configuration for cfg, as withEnv entries. Only the settings the
     * step was given: everything else stays ci-kit's default or the agent's
     * CI_KIT_* environment. CIKIT_BIN (the command) is the library's own.
     */
    static List<String> environment(Map cfg) {
        List<String> vars = ["CIKIT_BIN=${cfg.ciKit}".toString()]
        Map<String, String> names = [
            indexUrl     : 'CI_KIT_INDEX_URL',
            unstableIndex: 'CI_KIT_UNSTABLE_INDEX',
            testingIndex : 'CI_KIT_TESTING_INDEX',
            stableIndex  : 'CI_KIT_STABLE_INDEX',
            testCommand  : 'CI_KIT_TEST_COMMAND',
        ]
        for (String key in names.keySet()) {
            if (cfg[key]) {
                vars.add("${names[key]}=${cfg[key]}".toString())
            }
        }
        if (cfg.testExtras) {
            vars.add("CI_KIT_TEST_EXTRAS=${cfg.testExtras.join(',')}".toString())
        }
        if (cfg.pythonVersions) {  // the whole matrix: each branch tests its share, the gate checks them all
            vars.add("CI_KIT_PYTHON_VERSIONS=${cfg.pythonVersions.join(',')}".toString())
        }
        return vars
    }

    /**
     * Runs body with ci-kit's environment for cfg plus extraEnv, and with the
     * index credentials bound to CI_KIT_USER / CI_KIT_PASSWORD (unless
     * cfg.credentialsId is empty). The secret reaches ci-kit only through the
     * environment of its process: `sh` strings must reference no secret.
     */
    static Object withIndex(Object steps, Map cfg, List<String> extraEnv, Closure body) {
        return withIndexCredential(steps, cfg, cfg.credentialsId, extraEnv, body)
    }

    /**
     * As withIndex(), for `ci-kit promote` only: binds cfg.promoteCredentialsId
     * (null: cfg.credentialsId). The test branches never hold this credential.
     */
    static Object withPromotion(Object steps, Map cfg, List<String> extraEnv, Closure body) {
        return withIndexCredential(steps, cfg, promotionCredentialsId(cfg), extraEnv, body)
    }

    /** The credential that promotion binds: promoteCredentialsId, else credentialsId. */
    static Object promotionCredentialsId(Map cfg) {
        return cfg.promoteCredentialsId ?: cfg.credentialsId
    }

    private static Object withIndexCredential(Object steps, Map cfg, Object credentialsId, List<String> extraEnv,
                                              Closure body) {
        List<String> vars = environment(cfg)
        vars.addAll(extraEnv)
        return steps.withEnv(vars) {
            return withUsernamePassword(steps, credentialsId, 'CI_KIT_USER', 'CI_KIT_PASSWORD', body)
        }
    }

    /**
     * Runs body with the registry credential cfg.registryCredentialsId bound to
     * CI_KIT_REGISTRY_USER / CI_KIT_REGISTRY_PASSWORD, which `ci-kit image --push`
     * hands to the Docker engine (nothing is written to a docker config file).
     * Without it, body runs as is: the agent's own docker login applies. As in
     * withIndex(), the secret reaches ci-kit only through its environment.
     */
    static Object withRegistry(Object steps, Map cfg, Closure body) {
        return withUsernamePassword(steps, cfg.registryCredentialsId, 'CI_KIT_REGISTRY_USER',
            'CI_KIT_REGISTRY_PASSWORD', body)
    }

    /** body with a Username with password credential bound to two variables; as is without an id. */
    private static Object withUsernamePassword(Object steps, Object credentialsId, String userVariable,
                                               String passwordVariable, Closure body) {
        if (!credentialsId) {
            return body()
        }
        return steps.withCredentials([steps.usernamePassword(
            credentialsId: credentialsId,
            usernameVariable: userVariable,
            passwordVariable: passwordVariable)]) {
            return body()
        }
    }

    /**
     * The KEY=VALUE lines of a ci-kit --output file (GITHUB_OUTPUT style), as
     * a map; a key written twice keeps its last value.
     */
    static Map<String, String> parseOutput(String text) {
        Map<String, String> values = [:]
        for (String line in text.readLines()) {
            int eq = line.indexOf('=')
            if (eq > 0) {
                values[line.substring(0, eq)] = line.substring(eq + 1)
            }
        }
        return values
    }

    /**
     * Git's CloneOption that fetches tags and full history: setuptools_scm and
     * hatch-vcs need the tags to give a tagged commit its final version, and
     * multibranch checkouts fetch none by default.
     */
    static Map<String, Object> fetchTags() {
        return [$class: 'CloneOption', noTags: false, shallow: false, depth: 0, reference: '', honorRefspec: false]
    }

    /**
     * The job's own checkout (`scm`: its branches, remotes and extensions,
     * e.g. a multibranch job's exact revision) plus fetchTags(), last, so that
     * it overrides a branch source's "no tags".
     */
    static Map<String, Object> scmWithTags(Object scm) {
        List<Object> extensions = []
        for (Object extension in (scm.extensions ?: [])) {
            extensions.add(extension)
        }
        extensions.add(fetchTags())
        return [$class: 'GitSCM', branches: scm.branches, userRemoteConfigs: scm.userRemoteConfigs,
                extensions: extensions]
    }

    /** A checkout of one commit with the job's Git remotes, cleaned first, tags fetched. */
    static Map<String, Object> commitScm(Object scm, String commit) {
        return [$class: 'GitSCM', branches: [[name: commit]], userRemoteConfigs: scm.userRemoteConfigs,
                extensions: [[$class: 'CleanBeforeCheckout'], fetchTags()]]
    }

    /**
     * Checks out commit (commitScm()) into the current node's workspace: every
     * node after job 1's works on the very commit that was built, for its tests
     * and for the product's [tool.ci-kit] that promote and image read. scm is
     * the job's `scm` global, passed in: the steps' scripts have it.
     */
    static void checkoutCommit(Object steps, Object scm, Object commit) {
        steps.checkout(commitScm(scm, commit.toString()))
    }

    /**
     * The job that `build` should start for triggerJob. A plain name is job 2
     * in the folder that holds job 1's project: in a plain job `build`
     * resolves it there itself; in a multibranch job (branchName set, as
     * Jenkins sets BRANCH_NAME) job 1 is a branch inside the multibranch
     * project, so the name becomes `../name`. A path (with '/') is used as is.
     */
    static String jobPath(String triggerJob, Object branchName) {
        if (triggerJob.contains('/') || !branchName) {
            return triggerJob
        }
        return '../' + triggerJob
    }

    /**
     * The normalised project name of a NAME==VERSION requirement (PEP 503: lower case,
     * runs of '-', '_', '.' as one '-'), for the promotion lock: `Churn_Model==1.0`
     * typed by hand and `churn-model==1.0` from job 1 must take the same lock.
     */
    static String projectName(String requirement) {
        return requirement.split('==', 2)[0].trim().toLowerCase().replaceAll('[-_.]+', '-')
    }

}
