import java.lang.reflect.Method
import org.codehaus.groovy.ast.ClassCodeVisitorSupport
import org.codehaus.groovy.ast.ClassHelper
import org.codehaus.groovy.ast.ClassNode
import org.codehaus.groovy.ast.CodeVisitorSupport
import org.codehaus.groovy.ast.MethodNode
import org.codehaus.groovy.ast.Parameter
import org.codehaus.groovy.ast.expr.ArgumentListExpression
import org.codehaus.groovy.ast.expr.ClosureExpression
import org.codehaus.groovy.ast.expr.ConstantExpression
import org.codehaus.groovy.ast.expr.DeclarationExpression
import org.codehaus.groovy.ast.expr.Expression
import org.codehaus.groovy.ast.expr.ListExpression
import org.codehaus.groovy.ast.expr.MethodCallExpression
import org.codehaus.groovy.ast.expr.StaticMethodCallExpression
import org.codehaus.groovy.ast.expr.VariableExpression
import org.codehaus.groovy.ast.stmt.BlockStatement
import org.codehaus.groovy.ast.stmt.CatchStatement
import org.codehaus.groovy.ast.stmt.ExpressionStatement
import org.codehaus.groovy.ast.stmt.ForStatement
import org.codehaus.groovy.ast.stmt.IfStatement
import org.codehaus.groovy.ast.stmt.ReturnStatement
import org.codehaus.groovy.ast.stmt.Statement
import org.codehaus.groovy.ast.stmt.TryCatchStatement
import org.codehaus.groovy.ast.stmt.WhileStatement
import org.codehaus.groovy.classgen.GeneratorContext
import org.codehaus.groovy.control.CompilePhase
import org.codehaus.groovy.control.SourceUnit
import org.codehaus.groovy.control.customizers.CompilationCustomizer

/**
 * The harness's approximations of what Jenkins' CPS transformation (workflow-cps) is
 * strict about. Plain Groovy runs the code; these checks make it fail where a controller
 * would.
 *
 * 1. Non-serialisable locals across a step (locals(), inserted by localsCustomizer()).
 *    CPS saves the program, every local variable in scope included, while a step runs;
 *    a value that Java serialisation cannot write (a java.util.regex.Matcher, a
 *    java.io.File reader, ...) fails the build with java.io.NotSerializableException.
 *    Approximation: before each statement that calls a step, a library variable or a
 *    method of the same class (which may call steps) - outside @NonCPS methods - the
 *    local variables declared so far in the enclosing blocks, the method's parameters
 *    and, inside closures, the enclosing scopes' locals, are written with a real
 *    ObjectOutputStream. The pipeline's own objects (scripts, env, currentBuild, the
 *    harness) are written as placeholders, as CPS writes them as pickles. It checks at
 *    the statement, a little earlier than CPS (which checks when the step starts), and
 *    also for statements whose method turns out to call no step; values reachable only
 *    through fields of `this` or the binding are not checked.
 *
 * 2. CPS-unsafe closures (checkCallSite(), called by the harness for every step and
 *    library variable). CPS transforms closures passed to the Groovy methods listed in
 *    allowlists/cps-translated-methods (each, collect, findAll, any, every, inject, ...);
 *    a closure passed to any other method (sort, toSorted, unique, sum, a Java method
 *    such as List.sort(Comparator) or Collections.sort) is called by non-CPS code, and a
 *    step in it fails ("expected to call ... but wound up catching ..."). The harness
 *    reads the Java stack when a step is called: between the step's closure and the
 *    script code that passed it, the outermost non-plumbing frame must be a translated
 *    Groovy method or a step of the harness. A step called from a @NonCPS method is
 *    rejected the same way.
 */
class CpsChecks {

    static volatile Set<String> translated = null
    /** class name -> whether it is the build's own script code. */
    static volatile Closure<Boolean> userClass = { String name -> false }
    /** class name -> the Class, for @NonCPS lookups. */
    static volatile Closure<Class> loadClass = { String name -> null }

    static final List<String> PLUMBING = ['org.codehaus.groovy.runtime.callsite.', 'org.codehaus.groovy.reflection.',
        'org.codehaus.groovy.runtime.metaclass.', 'groovy.lang.MetaClassImpl', 'groovy.lang.MetaMethod',
        'groovy.lang.Closure', 'groovy.lang.GroovyObjectSupport', 'groovy.lang.Script',
        'org.codehaus.groovy.runtime.InvokerHelper', 'org.codehaus.groovy.runtime.ScriptBytecodeAdapter',
        'org.codehaus.groovy.runtime.dgm$', 'org.codehaus.groovy.vmplugin.', 'sun.reflect.', 'jdk.internal.reflect.',
        'java.lang.reflect.', 'java.lang.invoke.', 'PipelineScript', 'Sandbox', 'CpsChecks']
    static final List<String> HARNESS = ['PipelineHarness', 'Ctx', 'Section', 'EnvProxy', 'RunWrapper']

    static synchronized void load(File list) {
        if (translated != null) {
            return
        }
        Set<String> names = new HashSet<String>()
        list.eachLine('UTF-8') { String line ->
            if (line.trim() && !line.startsWith('#')) {
                names.add(line.trim().split(/\s+/).join(' '))
            }
        }
        translated = names
    }

    // ------------------------------------------------------------ 2. closures and @NonCPS

    private static final Map<String, Boolean> NON_CPS = Collections.synchronizedMap([:])

    private static boolean nonCps(StackTraceElement frame) {
        String key = "${frame.className}#${frame.methodName}"
        Boolean known = NON_CPS[key]
        if (known == null) {
            known = false
            Class c = loadClass.call(frame.className)
            if (c != null) {
                for (Method m in c.declaredMethods) {
                    if (m.name == frame.methodName &&
                            m.annotations.any { it.annotationType().name == 'com.cloudbees.groovy.cps.NonCPS' }) {
                        known = true
                    }
                }
            }
            NON_CPS[key] = known
        }
        return known
    }

    private static boolean startsWithAny(String name, List<String> prefixes) {
        for (String p in prefixes) {
            if (name.startsWith(p)) {
                return true
            }
        }
        return false
    }

    /** Throws as Jenkins would when the step `step` is called here (see 2. above). */
    static void checkCallSite(String step) {
        StackTraceElement[] frames = new Throwable().stackTrace
        boolean inScript = false
        List<StackTraceElement> between = []
        for (StackTraceElement f in frames) {
            String cls = f.className
            String top = cls.contains('$') ? cls.substring(0, cls.indexOf('$')) : cls
            if (top in HARNESS) {
                if (inScript) {
                    return  // a step of the harness (withEnv, dir, parallel...) ran this code: CPS
                }
                continue
            }
            if (userClass.call(cls)) {
                if (nonCps(f)) {
                    throw new IllegalStateException("harness (CPS): step '${step}' called from @NonCPS method " +
                        "${cls}.${f.methodName}: Jenkins does not run steps from @NonCPS code; call it from CPS code")
                }
                if (inScript && between) {
                    verdict(step, between)
                }
                inScript = true
                between = []
                continue
            }
            if (!inScript || startsWithAny(cls, PLUMBING)) {
                continue
            }
            between << f
        }
    }

    private static void verdict(String step, List<StackTraceElement> between) {
        StackTraceElement caller = between[-1]  // what the script called, which called the closure
        if (translated.contains("${caller.className} ${caller.methodName}".toString())) {
            return
        }
        String method = "${caller.className}.${caller.methodName}"
        throw new IllegalStateException("harness (CPS): step '${step}' inside a closure called by ${method}, " +
            'which CPS does not transform: Jenkins says "expected to call ' + method + " but wound up catching " +
            "${step}\" (https://jenkins.io/redirect/pipeline-cps-method-mismatches/); use a for loop, or a " +
            'closure method CPS transforms (each, collect, findAll, ...)')
    }

    // ------------------------------------------------------------ 1. serialisable locals

    /** Writes each value as CPS would save it; throws NotSerializableException-like errors. */
    static void locals(String step, List<String> names, List<Object> values) {
        for (int i = 0; i < names.size(); i++) {
            Object value = values[i]
            if (value == null) {
                continue
            }
            try {
                ObjectOutputStream out = new PipelineObjectOutputStream(new ByteArrayOutputStream())
                out.writeObject(value)
                out.close()
            } catch (NotSerializableException e) {
                throw new IllegalStateException("java.io.NotSerializableException: ${e.message} (harness (CPS): the " +
                    "local variable '${names[i]}' (${value.getClass().name}) is in scope when '${step}' runs, and CPS " +
                    'saves every local then; drop it before the step, or compute it in a @NonCPS method)')
            }
        }
    }

    static CompilationCustomizer localsCustomizer(Set<String> stepNames) {
        return new CpsLocalsCustomizer(stepNames)
    }

}

/** Writes the pipeline's own objects (scripts, globals, the harness) as placeholders, like CPS's pickles. */
@groovy.transform.CompileStatic
class PipelineObjectOutputStream extends ObjectOutputStream {

    PipelineObjectOutputStream(OutputStream out) {
        super(out)
        enableReplaceObject(true)
    }

    @Override
    protected Object replaceObject(Object obj) {
        if (obj instanceof Script || obj instanceof Binding) {
            return 'pickle:' + obj.getClass().name
        }
        String name = obj.getClass().name
        if (name in CpsChecks.HARNESS || name == 'org.codehaus.groovy.runtime.callsite.BooleanClosureWrapper') {
            return 'pickle:' + name
        }
        return obj
    }

}

/** Inserts CpsChecks.locals(...) before the statements that call steps (see CpsChecks, 1.). */
class CpsLocalsCustomizer extends CompilationCustomizer {

    final Set<String> stepNames

    CpsLocalsCustomizer(Set<String> stepNames) {
        super(CompilePhase.CONVERSION)
        this.stepNames = stepNames
    }

    @Override
    void call(SourceUnit source, GeneratorContext context, ClassNode classNode) {
        Set<String> calls = new HashSet<String>(stepNames)
        for (MethodNode m in classNode.methods) {
            calls.add(m.name)
        }
        for (MethodNode m in classNode.methods) {
            boolean nonCps = m.annotations.any { it.classNode.nameWithoutPackage == 'NonCPS' }
            if (m.code instanceof BlockStatement && !nonCps && !m.isAbstract()) {
                List<List<String>> scopes = [m.parameters.collect { Parameter p -> p.name }]
                new LocalsInstrumenter(calls).block((BlockStatement) m.code, scopes)
            }
        }
    }

}

class LocalsInstrumenter {

    private static final ClassNode CHECKS = ClassHelper.make(CpsChecks)
    final Set<String> calls

    LocalsInstrumenter(Set<String> calls) {
        this.calls = calls
    }

    void block(BlockStatement b, List<List<String>> scopes) {
        List<List<String>> inner = scopes + [[]]
        List<Statement> out = []
        for (Statement s in b.statements) {
            String step = stepCalled(s)
            if (step != null) {
                List<String> names = inner.flatten().unique() as List<String>
                if (names) {
                    out << check(step, names)
                }
            }
            out << s
            descend(s, inner)
            if (s instanceof ExpressionStatement && ((ExpressionStatement) s).expression instanceof DeclarationExpression) {
                DeclarationExpression d = (DeclarationExpression) ((ExpressionStatement) s).expression
                if (!d.isMultipleAssignmentDeclaration()) {
                    inner[-1] << d.variableExpression.name
                }
            }
        }
        b.statements.clear()
        b.statements.addAll(out)
    }

    private Statement check(String step, List<String> names) {
        return new ExpressionStatement(new StaticMethodCallExpression(CHECKS, 'locals', new ArgumentListExpression([
            new ConstantExpression(step),
            new ListExpression(names.collect { new ConstantExpression(it) as Expression }),
            new ListExpression(names.collect { new VariableExpression(it) as Expression }),
        ])))
    }

    private void descend(Statement s, List<List<String>> scopes) {
        if (s instanceof BlockStatement) {
            block((BlockStatement) s, scopes)
        } else if (s instanceof IfStatement) {
            IfStatement i = (IfStatement) s
            closures(i.booleanExpression, scopes)
            descend(i.ifBlock, scopes)
            descend(i.elseBlock, scopes)
        } else if (s instanceof ForStatement) {
            ForStatement f = (ForStatement) s
            List<String> loop = f.variable == null || f.variable.name == 'forLoopDummyParameter' ? [] : [f.variable.name]
            closures(f.collectionExpression, scopes)
            descend(f.loopBlock, scopes + [loop])
        } else if (s instanceof WhileStatement) {
            descend(((WhileStatement) s).loopBlock, scopes)
        } else if (s instanceof TryCatchStatement) {
            TryCatchStatement t = (TryCatchStatement) s
            descend(t.tryStatement, scopes)
            for (CatchStatement c in t.catchStatements) {
                descend(c.code, scopes + [[c.variable.name]])
            }
            descend(t.finallyStatement, scopes)
        } else if (s instanceof ExpressionStatement) {
            closures(((ExpressionStatement) s).expression, scopes)
        } else if (s instanceof ReturnStatement) {
            closures(((ReturnStatement) s).expression, scopes)
        }
    }

    /** Instruments the closures in an expression (not nested ones: block() does those). */
    private void closures(Expression e, List<List<String>> scopes) {
        if (e == null) {
            return
        }
        List<ClosureExpression> found = []
        e.visit(new CodeVisitorSupport() {
            @Override
            void visitClosureExpression(ClosureExpression c) {
                found << c
            }
        })
        for (ClosureExpression c in found) {
            List<String> params = c.parameters == null ? [] : c.parameters.collect { Parameter p -> p.name }
            if (c.code instanceof BlockStatement) {
                block((BlockStatement) c.code, scopes + [params])
            }
        }
    }

    /** The first step-like call of the statement itself (not in its closures), or null. */
    private String stepCalled(Statement s) {
        Expression e = s instanceof ExpressionStatement ? ((ExpressionStatement) s).expression :
            (s instanceof ReturnStatement ? ((ReturnStatement) s).expression : null)
        if (e == null) {
            return null
        }
        String found = null
        e.visit(new CodeVisitorSupport() {
            @Override
            void visitMethodCallExpression(MethodCallExpression call) {
                if (found == null && call.methodAsString in calls) {
                    found = call.methodAsString
                }
                super.visitMethodCallExpression(call)
            }

            @Override
            void visitClosureExpression(ClosureExpression c) {
                // the closure's own statements are checked where they run
            }
        })
        return found
    }

}
