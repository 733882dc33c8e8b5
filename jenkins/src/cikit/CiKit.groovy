package cikit

/**
 * Helpers shared by the ci-kit pipeline steps (vars/ciKit*.groovy).
 *
 * Nothing here decides anything about building, testing or promoting: ci-kit
 * does that, in Python. This class only knows
 *   - each step's named parameters and their defaults (PARAMETERS),
 *   - how they map to ci-kit's CI_KIT_* environment (environment()),
 *   - how to bind the index credentials (withIndex()) and, for `ci-kit image`,
 *     the registry's (withRegistry()),
 *   - how to read the KEY=VALUE lines that `ci-kit ... --output FILE` writes
 *     (parseOutput()).
 * Plain loops, no closures over collections: the code runs under Jenkins' CPS
 * transformation and, for folder libraries, in the script sandbox.
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
        junitDir      : 'ci-kit-results', // where ci-kit writes JUnit XML, relative to projectDir
        promote       : true,             // false: test only, never promote
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
            archive    : true,      // archive the JUnit XML and promote's --output file (ci-kit-promote.txt)
        ] + TEST,
        ciKitImage         : COMMON + [
            requirement          : null,  // NAME==VERSION; null: build parameter REQUIREMENT, else ci-kit's choice
            push                 : null,  // REGISTRY/REPO to push to; null: build only
            registryCredentialsId: null,  // the registry's Username with password credential; null: agent's login
            archive              : true,  // archive ci-kit image's --output file as ci-kit-image.txt
        ],
        ciKitPipeline      : COMMON + [
            job           : 'both', // 'both', 'build-and-push' or 'test-and-promote'
            agentLabel    : null,   // label expression for `agent`; null: any agent
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

    /** The defaults of step, overridden by args (a new map). */
    static Map<String, Object> settings(String step, Map args) {
        Map<String, Object> cfg = new LinkedHashMap<String, Object>(PARAMETERS[step])
        cfg.putAll(args)
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
        return vars
    }

    /**
     * Runs body with ci-kit's environment for cfg plus extraEnv, and with the
     * index credentials bound to CI_KIT_USER / CI_KIT_PASSWORD (unless
     * cfg.credentialsId is empty). The secret reaches ci-kit only through the
     * environment of its process: `sh` strings must reference no secret.
     */
    static Object withIndex(Object steps, Map cfg, List<String> extraEnv, Closure body) {
        List<String> vars = environment(cfg)
        vars.addAll(extraEnv)
        return steps.withEnv(vars) {
            return withUsernamePassword(steps, cfg.credentialsId, 'CI_KIT_USER', 'CI_KIT_PASSWORD', body)
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
     * The normalised project name of a NAME==VERSION requirement (PEP 503: lower case,
     * runs of '-', '_', '.' as one '-'), for the promotion lock: `Churn_Model==1.0`
     * typed by hand and `churn-model==1.0` from job 1 must take the same lock.
     */
    static String projectName(String requirement) {
        return requirement.split('==', 2)[0].trim().toLowerCase().replaceAll('[-_.]+', '-')
    }

}
