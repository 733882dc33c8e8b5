/*
 * Runs one Jenkins build in the PipelineHarness and writes its report as JSON.
 *
 *   groovy -cp tests/jenkins tests/jenkins/run.groovy CONFIG.json
 *
 * CONFIG (JSON): library (the shared library's directory), stubs
 * (tests/jenkins/stubs), workspace, report (where to write the report),
 * jenkinsfile (a file) or script (Groovy text), and optionally jobName, env
 * (the agent's environment), params (build parameters), credentials
 * ({id: {username, password}}), scm ({url, branch}: what `scm` checks out),
 * artifacts (directory for archived files), mode: "run" (default) or
 * "parameters" (write the library's cikit.CiKit.PARAMETERS instead of running).
 *
 * Exit status 0 whenever a report was written; the build's own result is in it.
 */
import groovy.json.JsonSlurper

Map cfg = (Map) new JsonSlurper().parse(new File(args[0]))
File report = new File(cfg.report as String)
PipelineHarness harness = new PipelineHarness(cfg)

if (cfg.mode == 'parameters') {
    GroovyClassLoader loader = new GroovyClassLoader(PipelineHarness.classLoader)
    loader.addClasspath(new File(cfg.library as String, 'src').path)
    Class ciKit = loader.loadClass('cikit.CiKit')
    report.text = PipelineHarness.toJson([parameters: ciKit.PARAMETERS, jobs: ciKit.JOBS])
    return
}

String text
String name
if (cfg.script != null) {
    text = cfg.script as String
    name = 'Jenkinsfile'
} else {
    File jenkinsfile = new File(cfg.jenkinsfile as String)
    text = jenkinsfile.getText('UTF-8')
    name = jenkinsfile.name.replaceAll('[^A-Za-z0-9_]', '_')
}
Map result = harness.run(text, name)
report.setText(PipelineHarness.toJson(result), 'UTF-8')
