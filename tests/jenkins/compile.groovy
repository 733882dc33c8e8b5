/*
 * Compiles Groovy files as a Jenkins controller would load them: Jenkinsfiles
 * and vars/*.groovy as scripts (with `@Library` imported), src/ classes on the
 * class path. Prints one line per file; exits 1 when any file fails.
 *
 *   groovy -cp tests/jenkins tests/jenkins/compile.groovy LIBRARY_DIR STUBS_DIR FILE...
 */
import org.codehaus.groovy.control.CompilationFailedException
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.customizers.ImportCustomizer

File library = new File(args[0])
File stubs = new File(args[1])
int failures = 0
args.drop(2).each { String path ->
    CompilerConfiguration cc = new CompilerConfiguration()
    ImportCustomizer imports = new ImportCustomizer()
    imports.addStarImports('org.jenkinsci.plugins.workflow.libs', 'com.cloudbees.groovy.cps')
    cc.addCompilationCustomizers(imports)
    GroovyClassLoader loader = new GroovyClassLoader(this.class.classLoader, cc)
    loader.addClasspath(stubs.path)
    loader.addClasspath(new File(library, 'src').path)
    File f = new File(path)
    try {
        loader.parseClass(new GroovyCodeSource(f, 'UTF-8'))
        println "ok ${path}"
    } catch (CompilationFailedException e) {
        failures++
        println "FAILED ${path}\n${e.message}"
    }
}
println "Groovy ${GroovySystem.version}: ${args.length - 2 - failures} compiled, ${failures} failed"
System.exit(failures ? 1 : 0)
