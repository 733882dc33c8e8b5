import groovy.json.JsonOutput
import java.util.concurrent.Semaphore
import java.util.concurrent.atomic.AtomicInteger
import java.util.concurrent.locks.ReentrantLock
import java.util.regex.Pattern
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.customizers.ImportCustomizer

/**
 * A small Jenkins Pipeline stand-in, enough to run ci-kit's shared library
 * (jenkins/vars/*.groovy, jenkins/src) and its Jenkinsfile templates for real
 * with Debian's Groovy 2.4 (the Groovy line Jenkins runs pipelines with).
 *
 * WHAT IT DOES
 *   - Compiles the Jenkinsfile and every vars/*.groovy with Groovy 2.4, with
 *     the library's src/ on the class path and `@Library` and `@NonCPS` (stubs/)
 *     imported as on a controller; a library variable `foo` is called as
 *     `foo(...)` -> call().
 *   - Interprets Declarative Pipeline: pipeline, agent (any, none, label; for the
 *     pipeline and per stage: a node is taken for it; no agent section is an error,
 *     as Declarative's validation says), options (recorded; skipDefaultCheckout
 *     honoured, also per stage agent; timeout not enforced), parameters (declare
 *     the job's parameters), stages/stage, when (expression, not, allOf, anyOf,
 *     environment, equals), steps, script, post (always, success, failure,
 *     unstable, unsuccessful, aborted, changed, fixed, regression, cleanup), with
 *     Declarative's rules: a stage that fails marks the build FAILURE and skips the
 *     later stages; post runs.
 *   - Build parameters: a value passed to the build reaches `params` only when the
 *     job defines the parameter (Declarative parameters, properties([parameters]),
 *     or the config's jobParameters, for a job configured in the UI); the others
 *     are dropped, as Jenkins drops them, and listed in the report. The job is
 *     assumed to have been built once (Jenkins learns a Jenkinsfile's parameters
 *     on its first build).
 *   - Nodes: `node(label)` and Declarative agents give a workspace per concurrent
 *     use (WORKSPACE, WORKSPACE@2, ...) and set NODE_NAME; the steps that need a
 *     workspace (NODE_STEPS: sh, junit, archiveArtifacts, checkout, dir, deleteDir,
 *     pwd, readFile, writeFile, fileExists, ...) fail outside one with Jenkins'
 *     "Required context class hudson.FilePath is missing". Labels are recorded,
 *     never matched: every node is this machine. The config's agentFailures: N
 *     makes the first N nodes taken fail as a lost agent does (for retry).
 *   - CPS (CpsChecks.groovy): a local variable that Java serialisation cannot write
 *     in scope at a statement that calls a step fails the build
 *     (NotSerializableException); a step inside a closure run by a method CPS does
 *     not transform (sort, toSorted, a Java method...; the transformed ones are
 *     allowlists/cps-translated-methods, from workflow-cps) or inside a @NonCPS
 *     method fails; @NonCPS methods themselves run, unchecked, as in Jenkins.
 *   - The script sandbox (Sandbox.groovy): every Jenkinsfile, and the library when
 *     `trustedLibrary` is false (a folder-level library), may only call methods and
 *     constructors on allowlists/generic-whitelist.subset (generated from
 *     script-security's default allow-list), as RejectedAccessException does.
 *   - Provides these steps, and fails on any other: sh (run for real by
 *     `/bin/sh -xe` in the current directory, with the build's environment:
 *     returnStatus, returnStdout, label), echo, error, withEnv,
 *     withCredentials + usernamePassword / string (values from the test's
 *     credential store, masked in the log as Jenkins does), lock (a real lock
 *     per resource), parallel (branches on threads, their Groovy serialised as
 *     under CPS, their `sh` processes concurrent; failFast not emulated), node,
 *     retry (count; any error retries), junit (parses the real XML, records suite
 *     and case names, UNSTABLE on failures, refuses missing or stale reports),
 *     archiveArtifacts (copies files to the report's artifacts dir), build
 *     (resolves the job's path as Jenkins does - relative to the folder holding
 *     this job, `..`, `/` - fails for a job not in the config's `jobs`, records;
 *     only wait: false), checkout (a real git fetch of the remote's refspec and
 *     checkout of the given branch/commit; tags fetched unless the extensions say
 *     otherwise: a multibranch job's GitSCMSourceDefaults(includeTags: false),
 *     CloneOption(noTags), in order; CleanBeforeCheckout honoured), properties
 *     (parameters only), dir, deleteDir, pwd, readFile, writeFile, fileExists,
 *     isUnix, stage, timeout (not enforced), and the globals env, params,
 *     currentBuild, scm (a plain job's GitSCM, or with `branchName` a multibranch
 *     branch job's: its branch, refspec and no-tags default, and BRANCH_NAME set).
 *   - Records every step call (name, arguments, the enclosing stage, parallel
 *     branch, lock and withCredentials as `context`; node and workspace), the log,
 *     the result and description of currentBuild, and whether a known secret
 *     appeared in the text of a `sh` step or, unmasked, in any process output.
 *
 * WHAT IT DOES NOT EMULATE
 *   - CPS itself: code runs as plain Groovy, so nothing is really serialised or
 *     resumed and builds cannot survive a restart. The CPS checks above are
 *     approximations: locals are checked at the statement that calls a step (or a
 *     method of the same class, which may), a little earlier and more often than
 *     CPS saves them, and values reachable only through fields or the binding are
 *     not checked; closures are judged by the Java stack between the script frames.
 *   - The sandbox's checks of property and field access, operators (`+`, `in`,
 *     `[]`, `<<`), casts and implicit coercions, and static fields: only method
 *     calls with an explicit receiver and constructors are checked; an allow-list
 *     entry for any applicable overload allows a call.
 *   - Declarative's other compile-time validation (ModelParser/ModelValidator):
 *     only the missing agent is reported.
 *   - Agents, executors, labels, stashes, remoting: every node is one local
 *     machine and user; workspaces are directories beside each other.
 *   - Plugins' real implementations: lock is local to one harness run (two
 *     builds in two processes do not exclude each other) and has no queue
 *     fairness, labels or quantities, junit keeps no history (and does not
 *     prefix test names with branch names as Jenkins displays them), build never
 *     runs the downstream job, credentials come from a map, checkout handles a
 *     plain git URL only, retry has no conditions.
 *   - Timeouts, input, aborts, quiet periods, triggers, environment {}.
 */
class PipelineHarness {

    static final List<String> RESULTS = ['SUCCESS', 'UNSTABLE', 'FAILURE', 'NOT_BUILT', 'ABORTED']
    static final List<String> POST_ORDER = ['always', 'changed', 'fixed', 'regression', 'aborted', 'failure',
                                            'success', 'unstable', 'unsuccessful', 'cleanup']

    // ---------------------------------------------------------------- configuration
    File library
    File workspace
    File stubs
    File artifactsDir
    String jobName
    Map<String, String> agentEnv = [:]
    Map<String, Map> credentials = [:]
    Map scmConfig
    Map<String, Object> buildParams = [:]
    boolean trustedLibrary = true
    String branchName
    List<String> knownJobs
    final List<String> droppedParams = []
    int agentFailures = 0

    // ---------------------------------------------------------------- state
    final List<Map> calls = Collections.synchronizedList(new ArrayList<Map>())
    final StringBuffer log = new StringBuffer()
    final Map<String, String> globalEnv = Collections.synchronizedMap(new LinkedHashMap<String, String>())
    final Map<String, Object> params = new LinkedHashMap<String, Object>()
    final RunWrapper currentBuild = new RunWrapper()
    final Semaphore cps = new Semaphore(1)
    final Map<String, ReentrantLock> locks = [:]
    final List<String> artifacts = Collections.synchronizedList(new ArrayList<String>())
    final ThreadLocal<Ctx> ctx = new ThreadLocal<Ctx>()
    final AtomicInteger counter = new AtomicInteger()
    long startedAt
    boolean secretInShText = false
    boolean secretInOutput = false
    Binding binding
    GroovyClassLoader loader
    GroovyClassLoader scriptLoader
    final Map<String, Script> vars = [:]
    final Set<Integer> busyWorkspaces = new HashSet<Integer>()
    private Set<String> userClassNames = new HashSet<String>()
    private int userClassCount = -1

    PipelineHarness(Map cfg) {
        library = new File(cfg.library as String).canonicalFile
        workspace = new File(cfg.workspace as String).absoluteFile
        stubs = new File(cfg.stubs as String).canonicalFile
        artifactsDir = new File((cfg.artifacts ?: "${workspace}@artifacts") as String).absoluteFile
        jobName = (cfg.jobName ?: 'job') as String
        (cfg.env ?: [:]).each { k, v -> agentEnv[k as String] = v as String }
        (cfg.credentials ?: [:]).each { k, v -> credentials[k as String] = v as Map }
        scmConfig = cfg.scm as Map
        (cfg.params ?: [:]).each { k, v -> buildParams[k as String] = v }
        (cfg.jobParameters ?: []).each { Object name -> declareParameter(name as String, null) }
        trustedLibrary = cfg.containsKey('trustedLibrary') ? cfg.trustedLibrary as boolean : true
        branchName = cfg.branchName as String
        agentFailures = (cfg.agentFailures ?: 0) as int
        knownJobs = cfg.jobs == null ? null : (cfg.jobs as List).collect { it as String }
        currentBuild.number = (cfg.buildNumber ?: 1) as int
        currentBuild.projectName = jobName
    }

    // ================================================================ loading and running

    /** Steps the harness knows (its step_* methods, the library's variables, Jenkins' usual ones). */
    private Set<String> stepNames() {
        Set<String> names = new HashSet<String>(['bat', 'git', 'stash', 'unstash', 'input', 'sleep', 'catchError',
                                                 'warnError', 'waitUntil', 'properties', 'retry', 'node', 'ws'])
        this.metaClass.methods.each { MetaMethod m ->
            if (m.name.startsWith('step_')) {
                names << m.name.substring(5)
            }
        }
        (new File(library, 'vars').listFiles() ?: []).each { File f ->
            if (f.name.endsWith('.groovy')) {
                names << f.name[0..-8]
            }
        }
        return names
    }

    /**
     * How Jenkins compiles pipeline code: `@Library` and `@NonCPS` need no import, CPS
     * rules are checked (CpsChecks), and sandboxed code goes through Sandbox's checks.
     */
    private CompilerConfiguration compilerConfiguration(boolean sandboxed) {
        CompilerConfiguration cc = new CompilerConfiguration()
        cc.scriptBaseClass = 'PipelineScript'
        ImportCustomizer imports = new ImportCustomizer()
        imports.addStarImports('org.jenkinsci.plugins.workflow.libs', 'com.cloudbees.groovy.cps')
        cc.addCompilationCustomizers(imports)
        cc.addCompilationCustomizers(CpsChecks.localsCustomizer(stepNames()))
        if (sandboxed) {
            cc.addCompilationCustomizers(Sandbox.customizer())
        }
        return cc
    }

    /** Whether a class (by name) is the build's own code: the Jenkinsfile, vars/, src/, their closures. */
    synchronized boolean isUserClass(String name) {
        List<Class> loaded = (loader.loadedClasses as List) + (scriptLoader == null ? [] : scriptLoader.loadedClasses as List)
        if (loaded.size() != userClassCount) {
            userClassNames = new HashSet<String>(loaded.collect { Class c -> c.name.contains('$') ? c.name.substring(0, c.name.indexOf('$')) : c.name })
            userClassCount = loaded.size()
        }
        String top = name.contains('$') ? name.substring(0, name.indexOf('$')) : name
        return top in userClassNames
    }

    private boolean isTrustedClass(Class c) {
        ClassLoader cl = c.classLoader
        while (cl != null) {
            if (cl.is(loader) || cl.is(scriptLoader)) {
                return true
            }
            if (!(cl instanceof GroovyClassLoader.InnerLoader)) {
                break
            }
            cl = cl.parent
        }
        return Script.isAssignableFrom(c) || c.name in CpsChecks.HARNESS
    }

    private void load() {
        File allowlists = new File(stubs.parentFile, 'allowlists')
        Sandbox.load(new File(allowlists, 'generic-whitelist.subset'))
        Sandbox.trusted = { Class c -> isTrustedClass(c) }
        CpsChecks.load(new File(allowlists, 'cps-translated-methods'))
        CpsChecks.userClass = { String name -> isUserClass(name) }
        CpsChecks.loadClass = { String name ->
            try {
                return Class.forName(name, false, scriptLoader ?: loader)
            } catch (ClassNotFoundException | NoClassDefFoundError ignored) {
                return null
            }
        }
        // the library: sandboxed only when it is untrusted (a folder-level library)
        loader = new GroovyClassLoader(PipelineHarness.classLoader, compilerConfiguration(!trustedLibrary))
        loader.addClasspath(stubs.path)
        File src = new File(library, 'src')
        if (src.isDirectory()) {
            loader.addClasspath(src.path)
        }
        // the Jenkinsfile: always sandboxed, as every Jenkinsfile from SCM is
        scriptLoader = new GroovyClassLoader(loader, compilerConfiguration(true))
        binding = new Binding()
        binding.setVariable('__harness', this)
        binding.setVariable('env', new EnvProxy(this))
        binding.setVariable('params', params)
        binding.setVariable('currentBuild', currentBuild)
        binding.setVariable('any', 'any')
        binding.setVariable('none', 'none')
        if (scmConfig) {
            // a multibranch job's `scm`: its one branch, and the branch source's defaults (no tags)
            boolean multibranch = branchName != null
            binding.setVariable('scm', [
                $class: 'GitSCM',
                userRemoteConfigs: [[url: scmConfig.url, refspec: multibranch ?
                    "+refs/heads/${branchName}:refs/remotes/origin/${branchName}".toString() : null]],
                branches: [[name: multibranch ? branchName : (scmConfig.branch ?: '*/main')]],
                extensions: multibranch ? [[$class: 'GitSCMSourceDefaults', includeTags: false]] : [],
            ])
        }
        File varsDir = new File(library, 'vars')
        (varsDir.listFiles() ?: []).findAll { it.name.endsWith('.groovy') }.sort { it.name }.each { File f ->
            Script s = (Script) loader.parseClass(f).newInstance()
            s.binding = binding
            vars[f.name[0..-8]] = s
        }
    }

    /** Loads the library, runs the Jenkinsfile (or script text), returns the report. */
    Map run(String scriptText, String scriptName) {
        startedAt = System.currentTimeMillis()
        workspace.mkdirs()
        ctx.set(new Ctx(cwd: workspace))
        Throwable failure = null
        Object returned = null
        cps.acquire()
        try {
            load()
            Script script = (Script) scriptLoader.parseClass(scriptText, scriptName).newInstance()
            script.binding = binding
            returned = script.run()
        } catch (Throwable t) {
            failure = t
            currentBuild.setResult('FAILURE')
            logLine("ERROR: ${t.message ?: t.class.name}")
        } finally {
            cps.release()
        }
        buildParams.keySet().each { String name ->
            if (!params.containsKey(name)) {
                droppedParams << name
            }
        }
        if (failure == null && currentBuild.result == null) {
            currentBuild.setResult('SUCCESS')
        }
        logLine("Finished: ${currentBuild.result}")
        return [
            result: currentBuild.result,
            description: currentBuild.description,
            displayName: currentBuild.displayName,
            params: plain(params),
            droppedParams: new ArrayList<String>(droppedParams),
            calls: plain(calls),
            error: failure == null ? null : [type: failure.class.name, message: failure.message,
                                             trace: trace(failure)],
            returned: plain(returned),
            artifacts: new ArrayList<String>(artifacts),
            secretInShText: secretInShText,
            secretInOutput: secretInOutput,
            log: log.toString(),
        ]
    }

    private static String trace(Throwable t) {
        StringWriter w = new StringWriter()
        org.codehaus.groovy.runtime.StackTraceUtils.deepSanitize(t).printStackTrace(new PrintWriter(w))
        List<String> lines = w.toString().readLines()
        return lines.take(40).join('\n')
    }

    // ================================================================ dispatch

    /** Every method a pipeline script does not define arrives here. */
    /** Steps that need a workspace, i.e. a node (Jenkins: "Required context class hudson.FilePath is missing"). */
    static final List<String> NODE_STEPS = ['sh', 'bat', 'junit', 'archiveArtifacts', 'checkout', 'git', 'dir',
                                            'deleteDir', 'pwd', 'readFile', 'writeFile', 'fileExists', 'isUnix',
                                            'stash', 'unstash']

    Object invoke(String name, Object[] args) {
        Ctx c = ctx.get()
        if (c.collector == null) {
            CpsChecks.checkCallSite(name)
            if (name in NODE_STEPS && c.node == null) {
                record(name, args, [refused: 'no node'])
                throw new PipelineFailure('Required context class hudson.FilePath is missing\n' +
                    "Perhaps you forgot to surround the ${name} step with a step that provides this, such as: node")
            }
        }
        if (vars.containsKey(name)) {
            record(name, args)
            return withCtx([collector: null]) {
                vars[name].invokeMethod('call', args)
            }
        }
        if (c.collector != null) {
            // inside a Declarative section: remember what it declares
            c.collector.entries << [name: name, args: (args as List)]
            Map descriptor = [__step: name]
            if (args.length > 0 && args[0] instanceof Map) {
                descriptor.putAll((Map) args[0])
            }
            return descriptor
        }
        String method = "step_${name}"
        if (!this.metaClass.respondsTo(this, method, [Object[]] as Class[])) {
            record(name, args)
            throw new UnsupportedOperationException(
                "harness: step '${name}' is not emulated (see tests/jenkins/PipelineHarness.groovy)")
        }
        return this."${method}"(args)
    }

    synchronized Map record(String step, Object[] args, Map extra = [:]) {
        Ctx c = ctx.get()
        Map rec = [n: counter.incrementAndGet(), step: step, args: plain(args as List), context: new ArrayList<String>(c.labels),
                   cwd: c.cwd.path, node: c.node, workspace: c.nodeWs?.path]
        rec.putAll(extra)
        calls << rec
        return rec
    }

    Object withCtx(Map changes, Closure body) {
        Ctx old = ctx.get()
        ctx.set(old.copy(changes))
        try {
            return body.call()
        } finally {
            ctx.set(old)
        }
    }

    private Object runtime(Closure body) {
        return withCtx([collector: null], body)
    }

    private Section collect(String kind, Closure body) {
        Section s = new Section(kind: kind)
        withCtx([collector: s], body)
        return s
    }

    // ================================================================ log, env, secrets

    synchronized void logLine(String line) {
        Ctx c = ctx.get()
        String branch = c == null ? null : c.labels.reverse().find { it.startsWith('parallel:') }
        String text = (branch ? "[${branch.substring(9)}] " : '') + mask(line)
        log.append(text).append('\n')
        System.out.println(text)
    }

    private List<String> secretValues() {
        List<String> values = []
        credentials.values().each { Map cred ->
            ['password', 'secret'].each { key ->
                if (cred[key]) {
                    values << (cred[key] as String)
                }
            }
        }
        return values
    }

    String mask(String text) {
        String masked = text
        secretValues().each { String s -> masked = masked.replace(s, '****') }
        return masked
    }

    Map<String, String> effectiveEnv(Ctx c) {
        Map<String, String> e = new LinkedHashMap<String, String>(agentEnv)
        File ws = c.nodeWs ?: workspace
        e.putAll([
            WORKSPACE: ws.path,
            WORKSPACE_TMP: "${ws.path}@tmp".toString(),
            JOB_NAME: jobName,
            JOB_BASE_NAME: jobName.tokenize('/')[-1],
            BUILD_NUMBER: currentBuild.number as String,
            BUILD_ID: currentBuild.number as String,
            BUILD_TAG: "jenkins-${jobName}-${currentBuild.number}".toString(),
            JENKINS_URL: 'http://jenkins.invalid/',
        ])
        if (c.node != null) {
            e.NODE_NAME = 'agent-1'
            e.NODE_LABELS = 'agent-1 linux'
        }
        if (branchName != null) {
            e.BRANCH_NAME = branchName
        }
        params.each { k, v ->
            if (v != null) {
                e[k] = v as String
            }
        }
        e.putAll(globalEnv)
        e.putAll(c.env)
        return e
    }

    File resolve(Object path) {
        File f = new File(path as String)
        if (!f.isAbsolute()) {
            f = new File(ctx.get().cwd, path as String)
        }
        return f.toPath().normalize().toFile()
    }

    // ================================================================ Declarative Pipeline

    Object step_pipeline(Object[] args) {
        record('pipeline', args)
        Section p = collect('pipeline', (Closure) args[0])
        p.only(['agent', 'options', 'parameters', 'stages', 'post'])
        Closure parameters = p.closure('parameters')
        if (parameters) {
            List<Map> declared = []
            collect('parameters', parameters).entries.each { Map e ->
                Map a = e.args[0] as Map
                Object dflt = e.name == 'choice' ? (a.choices instanceof List ? a.choices[0] :
                    (a.choices as String).readLines()[0]) : a.defaultValue
                declared << [type: e.name, name: a.name, defaultValue: dflt]
                declareParameter(a.name as String, dflt)
            }
            record('parameters', [declared] as Object[])
        }
        boolean skipDefaultCheckout = false
        Closure options = p.closure('options')
        if (options) {
            List<String> declared = []
            collect('options', options).entries.each { Map e ->
                declared << e.name
                if (e.name == 'skipDefaultCheckout' && (e.args.isEmpty() || e.args[0])) {
                    skipDefaultCheckout = true
                }
            }
            record('options', [declared] as Object[])
        }
        Map agent = p.first('agent')
        if (agent == null) {
            // Declarative's validation (ModelValidator), before anything runs
            throw new PipelineFailure('WorkflowScript: Missing required section "agent"')
        }
        String label = agentLabel(agent)
        declarativeCheckout = !skipDefaultCheckout && scmConfig
        // with `agent none`, each stage with an agent checks out on its own node (runDeclarativeStage)
        return label == null ? runPipeline(p, false) : onNode(label, [agent: true] as Object[]) {
            runPipeline(p, declarativeCheckout)
        }
    }

    private boolean declarativeCheckout

    /** The node label an `agent` section asks for ('' any), or null for `agent none`. */
    private String agentLabel(Map agent) {
        Object a = agent.args[0]
        record('agent', [a instanceof Closure ? collect('agent', (Closure) a).describe() : a] as Object[])
        if (a == 'none') {
            return null
        }
        if (a == 'any') {
            return ''
        }
        if (a instanceof Closure) {
            Section s = collect('agent', (Closure) a)
            Map l = s.first('label') ?: s.first('node')
            if (l == null) {
                throw new UnsupportedOperationException("harness: agent ${s.describe()} is not emulated (any, none, label)")
            }
            Object v = l.args ? l.args[0] : ''
            if (v instanceof Closure) {
                v = collect('node', (Closure) v).first('label')?.args?.getAt(0) ?: ''
            }
            return (v instanceof Map ? (v as Map).label : v) as String ?: ''
        }
        throw new UnsupportedOperationException("harness: agent ${a} is not emulated (any, none, label)")
    }

    private Object runPipeline(Section p, boolean checkoutFirst) {
        Throwable firstError = null
        if (checkoutFirst) {
            firstError = runStage('Declarative: Checkout SCM', null) {
                invoke('checkout', [binding.getVariable('scm')] as Object[])
            }
        }
        Closure stages = p.closure('stages')
        if (stages == null) {
            throw new IllegalArgumentException('harness: pipeline {} without stages {}')
        }
        collect('stages', stages).entries.each { Map e ->
            if (e.name != 'stage') {
                throw new UnsupportedOperationException("harness: '${e.name}' inside stages {} is not emulated")
            }
            Throwable err = runDeclarativeStage(e.args[0] as String, (Closure) e.args[1])
            firstError = firstError ?: err
        }
        Closure post = p.closure('post')
        if (post) {
            Throwable err = runPost('pipeline', post)
            firstError = firstError ?: err
        }
        if (firstError != null) {
            throw firstError
        }
        return null
    }

    private Throwable runDeclarativeStage(String name, Closure body) {
        Section s = collect('stage', body)
        s.only(['when', 'steps', 'post', 'agent', 'options'])
        if (currentBuild.result in ['FAILURE', 'ABORTED']) {
            record('stage', [name] as Object[], [status: 'skipped', reason: 'earlier failure'])
            logLine("Stage \"${name}\" skipped due to earlier failure(s)")
            return null
        }
        Closure when = s.closure('when')
        if (when != null) {
            boolean go = withCtx([labels: ctx.get().labels + "stage:${name}".toString()]) { evalWhen(when) }
            if (!go) {
                record('stage', [name] as Object[], [status: 'skipped', reason: 'when'])
                logLine("Stage \"${name}\" skipped due to when conditional")
                return null
            }
        }
        Closure steps = s.closure('steps')
        if (steps == null) {
            throw new IllegalArgumentException("harness: stage '${name}' has no steps {}")
        }
        Closure post = s.closure('post')
        Map agent = s.first('agent')
        String label = agent == null ? null : agentLabel(agent)
        if (label != null) {
            return onNode(label, [agent: true] as Object[]) {
                Closure stageBody = steps
                if (declarativeCheckout) {
                    stageBody = {
                        invoke('checkout', [binding.getVariable('scm')] as Object[])
                        steps.call()
                    }
                }
                runStage(name, post, stageBody)
            } as Throwable
        }
        return runStage(name, post, steps)
    }

    private Throwable runStage(String name, Closure post, Closure body) {
        String label = "stage:${name}"
        record('stage', [name] as Object[], [status: 'run'])
        logLine("[Pipeline] { (${name})")
        Throwable error = null
        withCtx([labels: ctx.get().labels + label, collector: null]) {
            try {
                body.call()
            } catch (Throwable t) {
                error = t
                currentBuild.setResult('FAILURE')
                logLine("ERROR: ${t.message ?: t.class.name}")
                record('stage-failed', [name] as Object[], [error: t.message ?: t.class.name])
            }
            if (post != null) {
                Throwable postError = runPost("stage:${name}", post, error != null)
                error = error ?: postError
            }
        }
        logLine('[Pipeline] }')
        return error
    }

    private Throwable runPost(String where, Closure post, boolean stageFailed = false) {
        Section s = collect('post', post)
        s.only(POST_ORDER)
        Throwable error = null
        POST_ORDER.each { String condition ->
            Closure body = s.closure(condition)
            if (body == null) {
                return
            }
            String result = stageFailed ? 'FAILURE' : currentBuild.currentResult
            boolean run
            switch (condition) {
                case 'always': case 'cleanup': run = true; break
                case 'success': run = result == 'SUCCESS'; break
                case 'failure': run = result == 'FAILURE'; break
                case 'unstable': run = result == 'UNSTABLE'; break
                case 'aborted': run = result == 'ABORTED'; break
                case 'unsuccessful': run = result != 'SUCCESS'; break
                default: run = result != 'SUCCESS'  // changed/fixed/regression: no previous build here
            }
            if (!run) {
                return
            }
            record('post', [condition] as Object[], [where: where])
            withCtx([labels: ctx.get().labels + "post:${condition}".toString(), collector: null]) {
                try {
                    body.call()
                } catch (Throwable t) {
                    error = error ?: t
                    currentBuild.setResult('FAILURE')
                    logLine("ERROR: ${t.message ?: t.class.name}")
                }
            }
        }
        return error
    }

    private boolean evalWhen(Closure when) {
        Section s = collect('when', when)
        return s.entries.every { Map e -> evalCondition(e) }
    }

    private boolean evalCondition(Map e) {
        switch (e.name) {
            case 'expression':
                return runtime((Closure) e.args[0]) as boolean
            case 'not':
                return !evalWhen((Closure) e.args[0])
            case 'allOf':
                return evalWhen((Closure) e.args[0])
            case 'anyOf':
                return collect('anyOf', (Closure) e.args[0]).entries.any { Map inner -> evalCondition(inner) }
            case 'environment':
                Map a = e.args[0] as Map
                return effectiveEnv(ctx.get())[a.name as String] == a.value
            case 'equals':
                Map a = e.args[0] as Map
                return a.expected == a.actual
            case 'beforeAgent': case 'beforeInput': case 'beforeOptions':
                return true
            default:
                throw new UnsupportedOperationException("harness: when condition '${e.name}' is not emulated")
        }
    }

    // ================================================================ structure steps

    Object step_script(Object[] args) {
        return runtime((Closure) args[0])
    }

    Object step_node(Object[] args) {
        String label = args.length > 1 ? (args[0] instanceof Map ? (args[0] as Map).label : args[0]) as String : ''
        return onNode(label ?: '', args) { runtime((Closure) args[-1]) }
    }

    /**
     * body on a node: a workspace of its own (as an agent gives each concurrent use of
     * a job's workspace, WORKSPACE@2, @3...), which the steps that need a node require.
     */
    private Object onNode(String label, Object[] args, Closure body) {
        int slot
        synchronized (busyWorkspaces) {
            slot = 1
            while (slot in busyWorkspaces) {
                slot++
            }
            busyWorkspaces << slot
        }
        File ws = slot == 1 ? workspace : new File("${workspace.path}@${slot}")
        ws.mkdirs()
        try {
            Map rec = record('node', args, [label: label, allocated: ws.path])
            logLine("Running on agent-1 in ${ws.path}")
            boolean lost = false
            synchronized (busyWorkspaces) {
                if (agentFailures > 0) {
                    agentFailures--
                    lost = true
                }
            }
            if (lost) {
                rec.lost = true
                throw new PipelineFailure('Cannot contact agent-1: java.io.IOException: the agent went offline ' +
                    '(harness: agentFailures)')
            }
            return withCtx([node: label ?: '(any)', nodeWs: ws, cwd: ws]) {
                rec.node = label ?: '(any)'
                body.call()
            }
        } finally {
            synchronized (busyWorkspaces) {
                busyWorkspaces.remove(slot)
            }
        }
    }

    Object step_retry(Object[] args) {
        int count = (args[0] instanceof Map ? (args[0] as Map).count : args[0]) as int
        record('retry', args, [count: count])
        Throwable last = null
        for (int attempt = 1; attempt <= count; attempt++) {
            try {
                return runtime((Closure) args[-1])
            } catch (Throwable t) {
                last = t
                logLine("ERROR: ${t.message ?: t.class.name}")
                if (attempt < count) {
                    logLine('Retrying')
                    record('retrying', [attempt] as Object[])
                }
            }
        }
        throw last
    }

    /** Scripted `properties([parameters([...])])`: declares the job's parameters (see declareParameter). */
    Object step_properties(Object[] args) {
        record('properties', args)
        (args[0] as List).each { Object property ->
            Map d = property as Map
            if (d.__step == 'parameters') {
                (d.definitions as List).each { Object definition ->
                    Map p = definition as Map
                    declareParameter(p.name as String, p.defaultValue)
                }
            }
        }
        return null
    }

    Object step_parameters(Object[] args) {
        return [__step: 'parameters', definitions: args[0]]
    }

    /**
     * A parameter the job defines: its value is the one passed to the build, else its
     * default. Jenkins drops passed values of parameters that the job does not define;
     * the harness assumes the job already knows what its Jenkinsfile declares (it was
     * built once), and reports the dropped ones.
     */
    synchronized void declareParameter(String name, Object defaultValue) {
        params[name] = buildParams.containsKey(name) ? buildParams[name] : defaultValue
    }

    Object step_stage(Object[] args) {
        String name = args[0] instanceof Map ? (args[0] as Map).name : args[0] as String
        Throwable err = runStage(name, null, (Closure) args[-1])
        if (err != null) {
            throw err
        }
        return null
    }

    Object step_timeout(Object[] args) {
        record('timeout', args)
        return runtime((Closure) args[-1])
    }

    Object step_dir(Object[] args) {
        record('dir', args)
        File d = resolve(args[0])
        d.mkdirs()
        return withCtx([cwd: d], (Closure) args[1])
    }

    Object step_withEnv(Object[] args) {
        record('withEnv', args)
        Map<String, String> overlay = new LinkedHashMap<String, String>(ctx.get().env)
        (args[0] as List).each { Object entry ->
            String s = entry as String
            int eq = s.indexOf('=')
            overlay[s.substring(0, eq)] = s.substring(eq + 1)
        }
        return withCtx([env: overlay], (Closure) args[1])
    }

    Object step_withCredentials(Object[] args) {
        List bindings = args[0] as List
        List<String> ids = bindings.collect { (it as Map).credentialsId as String }
        record('withCredentials', args)
        Map<String, String> overlay = new LinkedHashMap<String, String>(ctx.get().env)
        bindings.each { Object b ->
            Map d = b as Map
            Map cred = credentials[d.credentialsId as String]
            if (cred == null) {
                throw new PipelineFailure("Could not find credentials entry with ID '${d.credentialsId}'")
            }
            if (d.__step == 'usernamePassword') {
                overlay[d.usernameVariable as String] = cred.username as String
                overlay[d.passwordVariable as String] = cred.password as String
            } else if (d.__step == 'string') {
                overlay[d.variable as String] = (cred.secret ?: cred.password) as String
            } else {
                throw new UnsupportedOperationException("harness: credential binding '${d.__step}' is not emulated")
            }
        }
        List<String> labels = ctx.get().labels + "withCredentials:${ids.join(',')}".toString()
        return withCtx([env: overlay, labels: labels], (Closure) args[1])
    }

    Object step_usernamePassword(Object[] args) {
        return [__step: 'usernamePassword'] + (args[0] as Map)
    }

    Object step_string(Object[] args) {
        Map a = args[0] as Map
        return [__step: 'string'] + a
    }

    Object step_booleanParam(Object[] args) {
        return [__step: 'booleanParam'] + (args[0] as Map)
    }

    Object step_lock(Object[] args) {
        String resource = args[0] instanceof Map ? (args[0] as Map).resource as String : args[0] as String
        if (resource == null) {
            throw new UnsupportedOperationException('harness: lock without resource (label, quantity) is not emulated')
        }
        ReentrantLock l
        synchronized (locks) {
            l = locks.computeIfAbsent(resource) { new ReentrantLock() }
        }
        record('lock', args, [resource: resource])
        if (!l.tryLock()) {
            logLine("[${resource}] is locked, waiting...")
            cps.release()
            try {
                l.lock()
            } finally {
                cps.acquire()
            }
        }
        logLine("Lock acquired on [${resource}]")
        try {
            return withCtx([labels: ctx.get().labels + "lock:${resource}".toString()], (Closure) args[-1])
        } finally {
            l.unlock()
            logLine("Lock released on resource [${resource}]")
            record('lock-released', [resource] as Object[])
        }
    }

    Object step_parallel(Object[] args) {
        Map branches = new LinkedHashMap(args[0] as Map)
        branches.remove('failFast')
        record('parallel', [branches.keySet() as List] as Object[])
        Ctx parent = ctx.get()
        Map results = Collections.synchronizedMap([:])
        List<List> errors = Collections.synchronizedList([])
        List<Thread> threads = []
        branches.each { Object name, Object body ->
            Ctx branchCtx = parent.copy([labels: parent.labels + "parallel:${name}".toString(), collector: null])
            Thread t = new Thread({
                ctx.set(branchCtx)
                cps.acquire()
                try {
                    results[name] = ((Closure) body).call()
                } catch (Throwable e) {
                    errors << [name, e]
                    logLine("ERROR: ${e.message ?: e.class.name}")
                } finally {
                    cps.release()
                }
            } as Runnable, "parallel-${name}")
            threads << t
        }
        cps.release()
        try {
            threads.each { it.start() }
            threads.each { it.join() }
        } finally {
            cps.acquire()
        }
        if (errors) {
            Throwable first = errors[0][1] as Throwable
            throw new PipelineFailure("Failed in branch ${errors[0][0]}: ${first.message}", first)
        }
        return results
    }

    // ================================================================ work steps

    Object step_echo(Object[] args) {
        record('echo', args)
        logLine(args[0] as String)
        return null
    }

    Object step_error(Object[] args) {
        record('error', args)
        throw new PipelineFailure(args[0] as String)
    }

    Object step_isUnix(Object[] args) {
        return true
    }

    Object step_pwd(Object[] args) {
        boolean tmp = args.length > 0 && args[0] instanceof Map && (args[0] as Map).tmp
        File d = ctx.get().cwd
        if (tmp) {
            d = new File("${d.path}@tmp")
            d.mkdirs()
        }
        return d.path
    }

    Object step_writeFile(Object[] args) {
        Map a = args[0] as Map
        record('writeFile', [[file: a.file, chars: (a.text as String).length()]] as Object[])
        File f = resolve(a.file)
        f.parentFile.mkdirs()
        f.setText(a.text as String, 'UTF-8')
        return null
    }

    Object step_readFile(Object[] args) {
        Object path = args[0] instanceof Map ? (args[0] as Map).file : args[0]
        record('readFile', args)
        File f = resolve(path)
        if (!f.isFile()) {
            throw new PipelineFailure("java.nio.file.NoSuchFileException: ${f}")
        }
        return f.getText('UTF-8')
    }

    Object step_fileExists(Object[] args) {
        Object path = args[0] instanceof Map ? (args[0] as Map).file : args[0]
        return resolve(path).exists()
    }

    Object step_deleteDir(Object[] args) {
        File d = ctx.get().cwd
        record('deleteDir', args, [path: d.path])
        d.deleteDir()
        return null
    }

    Object step_sh(Object[] args) {
        Map o = args[0] instanceof Map ? new LinkedHashMap(args[0] as Map) : [script: args[0]]
        String text = o.script as String
        Ctx c = ctx.get()
        boolean leak = secretValues().any { String s -> text.contains(s) }
        secretInShText = secretInShText || leak
        Map rec = record('sh', [o] as Object[], [script: text, secretInText: leak])
        logLine("[Pipeline] sh${o.label ? " (${o.label})" : ''}")
        File dir = c.cwd
        dir.mkdirs()
        File tmp = new File("${dir.path}@tmp")
        tmp.mkdirs()
        File scriptFile = File.createTempFile('script', '.sh', tmp)
        scriptFile.setText(text, 'UTF-8')
        List<String> command = text.startsWith('#!') ? [scriptFile.path] : ['/bin/sh', '-xe', scriptFile.path]
        scriptFile.setExecutable(true)
        ProcessBuilder pb = new ProcessBuilder(command).directory(dir)
        pb.environment().clear()
        pb.environment().putAll(effectiveEnv(c))
        boolean stdout = o.returnStdout as boolean
        pb.redirectErrorStream(!stdout)
        StringBuilder captured = new StringBuilder()
        int status
        cps.release()
        try {
            Process p = pb.start()
            p.outputStream.close()
            Thread errReader = null
            if (stdout) {
                errReader = Thread.start { p.errorStream.eachLine('UTF-8') { String line -> output(line) } }
                p.inputStream.eachLine('UTF-8') { String line -> captured.append(line).append('\n') }
            } else {
                p.inputStream.eachLine('UTF-8') { String line -> output(line) }
            }
            status = p.waitFor()
            errReader?.join()
        } finally {
            cps.acquire()
            scriptFile.delete()
        }
        rec.status = status
        if (status != 0 && !o.returnStatus) {
            throw new PipelineFailure("script returned exit code ${status}")
        }
        if (o.returnStatus) {
            return status
        }
        if (stdout) {
            return captured.toString()
        }
        return null
    }

    private void output(String line) {
        if (secretValues().any { String s -> line.contains(s) }) {
            secretInOutput = true
        }
        logLine(line)
    }

    Object step_checkout(Object[] args) {
        Map s = args[0] as Map
        String url = ((s.userRemoteConfigs as List)[0] as Map).url as String
        String branch = (((s.branches ?: []) as List)[0] as Map)?.name as String ?: 'HEAD'
        boolean clean = (s.extensions ?: []).any { (it as Map).get('$class') == 'CleanBeforeCheckout' }
        // the git plugin fetches tags unless an extension says otherwise, in order: a
        // multibranch source's defaults (no tags unless discovered), CloneOption(noTags)
        boolean tags = true
        (s.extensions ?: []).each { Object ext ->
            Map e = ext as Map
            if (e.get('$class') == 'GitSCMSourceDefaults') {
                tags = e.includeTags as boolean
            } else if (e.get('$class') == 'CloneOption') {
                tags = !(e.noTags as boolean)
            }
        }
        String refspec = ((s.userRemoteConfigs as List)[0] as Map).refspec as String ?: '+refs/heads/*:refs/remotes/origin/*'
        Map rec = record('checkout', args, [url: url, branch: branch, tags: tags, refspec: refspec])
        File dir = ctx.get().cwd
        dir.mkdirs()
        if (!new File(dir, '.git').exists()) {
            git(dir, 'init', '-q')
        }
        git(dir, 'fetch', '-q', tags ? '--tags' : '--no-tags', '--force', url, refspec)
        List<String> candidates = [branch.replaceFirst('^\\*/', 'origin/'), "origin/${branch}".toString(), branch]
        String sha = null
        for (String candidate in candidates) {
            sha = git(dir, true, 'rev-parse', '--verify', '-q', "${candidate}^{commit}".toString())
            if (sha) {
                break
            }
        }
        if (!sha) {
            throw new PipelineFailure("Couldn't find any revision to build for '${branch}' in ${url}")
        }
        if (clean) {
            git(dir, 'clean', '-fdxq')
        }
        git(dir, 'checkout', '-q', '-f', sha)
        rec.commit = sha
        logLine("Checking out Revision ${sha} (${branch})")
        return [GIT_COMMIT: sha, GIT_URL: url, GIT_BRANCH: branch]
    }

    private String git(File dir, String... args) {
        return git(dir, false, args)
    }

    private String git(File dir, boolean mayFail, String... args) {
        List<String> command = ['git'] + (args as List)
        Process p = new ProcessBuilder(command).directory(dir).redirectErrorStream(true).start()
        String out = p.inputStream.getText('UTF-8').trim()
        int status = p.waitFor()
        if (status != 0) {
            if (mayFail) {
                return null
            }
            throw new PipelineFailure("git ${args.join(' ')} failed (${status}): ${out}")
        }
        return out
    }

    Object step_junit(Object[] args) {
        Map a = args[0] instanceof Map ? args[0] as Map : [testResults: args[0]]
        List<File> files = glob(a.testResults as String)
        Map rec = record('junit', args, [files: files.collect { relative(it) }])
        if (files.isEmpty()) {
            if (a.allowEmptyResults) {
                logLine('None of the test reports contained any result')
                rec.totalCount = 0
                rec.failCount = 0
                return [totalCount: 0, failCount: 0, skipCount: 0, passCount: 0]
            }
            throw new PipelineFailure('No test report files were found. Configuration error?')
        }
        List<File> fresh = files.findAll { it.lastModified() >= startedAt - 3000 }
        if (fresh.isEmpty()) {
            throw new PipelineFailure('Test reports were found but none of them are new. Did leafNodes run?')
        }
        int total = 0
        int failed = 0
        int skipped = 0
        List<Map> cases = []
        List<String> suites = []
        fresh.each { File f ->
            def xml = new XmlSlurper(false, false).parse(f)
            xml.depthFirst().findAll { it.name() == 'testsuite' }.each { suites << it.@name.text() }
            xml.depthFirst().findAll { it.name() == 'testcase' }.each { tc ->
                String outcome = tc.failure.size() || tc.error.size() ? 'failed' : (tc.skipped.size() ? 'skipped' : 'passed')
                total++
                if (outcome == 'failed') {
                    failed++
                }
                if (outcome == 'skipped') {
                    skipped++
                }
                cases << [file: relative(f), classname: tc.@classname.text(), name: tc.@name.text(), outcome: outcome]
            }
        }
        rec.totalCount = total
        rec.failCount = failed
        rec.skipCount = skipped
        rec.cases = cases
        rec.suites = suites
        logLine("Recording test results: ${total} tests, ${failed} failed, ${skipped} skipped")
        if (failed > 0) {
            currentBuild.setResult('UNSTABLE')
        }
        return [totalCount: total, failCount: failed, skipCount: skipped, passCount: total - failed - skipped]
    }

    Object step_archiveArtifacts(Object[] args) {
        Map a = args[0] instanceof Map ? args[0] as Map : [artifacts: args[0]]
        List<File> files = []
        (a.artifacts as String).split(',').each { String pattern -> files.addAll(glob(pattern.trim())) }
        Map rec = record('archiveArtifacts', args, [files: files.collect { relative(it) }])
        if (files.isEmpty() && !a.allowEmptyArchive) {
            throw new PipelineFailure("No artifacts found that match the file pattern \"${a.artifacts}\". Configuration error?")
        }
        File base = ctx.get().cwd
        files.each { File f ->
            String rel = base.toPath().relativize(f.toPath()).toString()
            File target = new File(artifactsDir, rel)
            target.parentFile.mkdirs()
            target.bytes = f.bytes
            artifacts << rel
        }
        return null
    }

    Object step_build(Object[] args) {
        Map a = args[0] instanceof Map ? args[0] as Map : [job: args[0]]
        Map<String, Object> values = [:]
        (a.parameters ?: []).each { Object p ->
            Map d = p as Map
            values[d.name as String] = d.value
        }
        boolean wait = a.containsKey('wait') ? a.wait as boolean : true
        String resolved = resolveJob(a.job as String)
        record('build', args, [job: a.job, resolvedJob: resolved, parameters: plain(values), wait: wait])
        if (knownJobs != null && !(resolved in knownJobs)) {
            throw new PipelineFailure("No item named ${a.job} found")
        }
        if (wait) {
            throw new UnsupportedOperationException(
                "harness: build(job: '${a.job}', wait: true) would need that job's result; only wait: false is emulated")
        }
        logLine("Scheduling project: ${a.job}")
        return null
    }

    /** A job name as Jenkins resolves it for `build`: relative to the folder holding this job, `..` up, `/` absolute. */
    String resolveJob(String name) {
        List<String> path = name.startsWith('/') ? [] : jobName.tokenize('/').dropRight(1)
        for (String part in name.tokenize('/')) {
            if (part == '..') {
                if (path) {
                    path.remove(path.size() - 1)
                }
            } else if (part != '.') {
                path << part
            }
        }
        return path.join('/')
    }

    // ================================================================ helpers

    private String relative(File f) {
        File ws = ctx.get()?.nodeWs ?: workspace
        return ws.toPath().relativize(f.toPath()).toString()
    }

    /** Ant-style pattern (**, *, ?) relative to the current directory; .git is never matched. */
    List<File> glob(String pattern) {
        File base = ctx.get().cwd
        Pattern regex = antPattern(pattern)
        List<File> found = []
        if (!base.isDirectory()) {
            return found
        }
        base.eachFileRecurse { File f ->
            String rel = base.toPath().relativize(f.toPath()).toString().replace('\\', '/')
            if (f.isFile() && !rel.startsWith('.git/') && !rel.contains('/.git/') && regex.matcher(rel).matches()) {
                found << f
            }
        }
        return found.sort { it.path }
    }

    static Pattern antPattern(String glob) {
        String g = glob.replace('\\', '/')
        if (g.startsWith('./')) {
            g = g.substring(2)
        }
        if (g.endsWith('/')) {
            g += '**'
        }
        StringBuilder sb = new StringBuilder('^')
        int i = 0
        while (i < g.length()) {
            if (g.startsWith('**/', i)) {
                sb.append('(?:.*/)?')
                i += 3
            } else if (g.startsWith('**', i)) {
                sb.append('.*')
                i += 2
            } else if (g.charAt(i) == '*' as char) {
                sb.append('[^/]*')
                i++
            } else if (g.charAt(i) == '?' as char) {
                sb.append('[^/]')
                i++
            } else {
                sb.append(Pattern.quote(g.substring(i, i + 1)))
                i++
            }
        }
        return Pattern.compile(sb.append('$').toString())
    }

    /** A JSON-safe copy: closures, files, GStrings and other objects become strings. */
    static Object plain(Object value) {
        if (value == null || value instanceof Number || value instanceof Boolean) {
            return value
        }
        if (value instanceof CharSequence) {
            return value.toString()
        }
        if (value instanceof Map) {
            Map out = new LinkedHashMap()
            synchronized (value) {
                (value as Map).each { k, v -> out[k as String] = plain(v) }
            }
            return out
        }
        if (value instanceof Collection || value instanceof Object[]) {
            List out = []
            synchronized (value) {
                (value as List).each { out << plain(it) }
            }
            return out
        }
        if (value instanceof Closure) {
            return '<closure>'
        }
        return value.toString()
    }

    static String toJson(Object value) {
        return JsonOutput.prettyPrint(JsonOutput.toJson(plain(value)))
    }

}

/** What is in scope at one point of a run: withEnv/withCredentials overlays, directory, labels, Declarative section. */
class Ctx {

    Map<String, String> env = [:]
    File cwd
    List<String> labels = []
    Section collector
    String node
    File nodeWs

    Ctx copy(Map changes) {
        Ctx c = new Ctx(env: env, cwd: cwd, labels: labels, collector: collector, node: node, nodeWs: nodeWs)
        changes.each { k, v -> c."${k}" = v }
        return c
    }

}

/** What a Declarative section ({ ... } of pipeline, stage, when, post, ...) declares. */
class Section {

    String kind
    List<Map> entries = []

    Map first(String name) {
        return entries.find { it.name == name }
    }

    Closure closure(String name) {
        Map e = first(name)
        return e == null ? null : (Closure) e.args[-1]
    }

    void only(List<String> allowed) {
        entries.each { Map e ->
            if (!(e.name in allowed)) {
                throw new UnsupportedOperationException(
                    "harness: '${e.name}' in ${kind} {} is not emulated (emulated: ${allowed.join(', ')})")
            }
        }
    }

    List describe() {
        return entries.collect { [it.name] + PipelineHarness.plain(it.args) }
    }

}

/** `env`: reads see withEnv/withCredentials in scope; writes set build-wide variables. */
class EnvProxy extends GroovyObjectSupport {

    private final PipelineHarness harness

    EnvProxy(PipelineHarness harness) {
        this.harness = harness
    }

    Object getProperty(String name) {
        return harness.effectiveEnv(harness.ctx.get())[name]
    }

    void setProperty(String name, Object value) {
        harness.globalEnv[name] = value == null ? null : value.toString()
    }

    Object getAt(String name) {
        return getProperty(name)
    }

}

/** `currentBuild`: result can only get worse, as Run.setResult. */
class RunWrapper {

    private String result
    String description
    String displayName
    int number = 1
    String projectName

    synchronized void setResult(String value) {
        String r = value?.toUpperCase()
        if (!(r in PipelineHarness.RESULTS)) {
            throw new IllegalArgumentException("unknown result ${value}")
        }
        if (result == null || PipelineHarness.RESULTS.indexOf(r) > PipelineHarness.RESULTS.indexOf(result)) {
            result = r
        }
    }

    String getResult() {
        return result
    }

    String getCurrentResult() {
        return result ?: 'SUCCESS'
    }

    boolean resultIsBetterOrEqualTo(String other) {
        return PipelineHarness.RESULTS.indexOf(currentResult) <= PipelineHarness.RESULTS.indexOf(other)
    }

    boolean resultIsWorseOrEqualTo(String other) {
        return PipelineHarness.RESULTS.indexOf(currentResult) >= PipelineHarness.RESULTS.indexOf(other)
    }

}

/** A step's failure (error, a non-zero sh, a missing credential...): the build becomes FAILURE. */
class PipelineFailure extends RuntimeException {

    PipelineFailure(String message) {
        super(message)
    }

    PipelineFailure(String message, Throwable cause) {
        super(message, cause)
    }

}
