import java.lang.reflect.Constructor
import java.lang.reflect.Method
import java.lang.reflect.Modifier
import org.codehaus.groovy.ast.ClassCodeExpressionTransformer
import org.codehaus.groovy.ast.ClassHelper
import org.codehaus.groovy.ast.ClassNode
import org.codehaus.groovy.ast.MethodNode
import org.codehaus.groovy.ast.expr.ArgumentListExpression
import org.codehaus.groovy.ast.expr.ArrayExpression
import org.codehaus.groovy.ast.expr.ClassExpression
import org.codehaus.groovy.ast.expr.ClosureExpression
import org.codehaus.groovy.ast.expr.ConstantExpression
import org.codehaus.groovy.ast.expr.ConstructorCallExpression
import org.codehaus.groovy.ast.expr.Expression
import org.codehaus.groovy.ast.expr.MapExpression
import org.codehaus.groovy.ast.expr.MethodCallExpression
import org.codehaus.groovy.ast.expr.NamedArgumentListExpression
import org.codehaus.groovy.ast.expr.SpreadExpression
import org.codehaus.groovy.ast.expr.StaticMethodCallExpression
import org.codehaus.groovy.ast.expr.TupleExpression
import org.codehaus.groovy.ast.expr.VariableExpression
import org.codehaus.groovy.classgen.GeneratorContext
import org.codehaus.groovy.control.CompilePhase
import org.codehaus.groovy.control.SourceUnit
import org.codehaus.groovy.control.customizers.CompilationCustomizer
import org.codehaus.groovy.runtime.DefaultGroovyMethods
import org.codehaus.groovy.runtime.DefaultGroovyStaticMethods
import org.codehaus.groovy.runtime.InvokerHelper
import org.codehaus.groovy.runtime.StringGroovyMethods

/**
 * The harness's script sandbox: an approximation of script-security's, for code that
 * Jenkins runs sandboxed (every Jenkinsfile from SCM; a library when it is registered
 * at folder level, i.e. untrusted).
 *
 * customizer() rewrites, at compile time, every method call with an explicit receiver
 * (`x.m(...)`, `Type.m(...)`) and every `new Type(...)` into a call of call() /
 * construct() here, which checks the call against the allow-list before making it.
 * The allow-list is allowlists/generic-whitelist.subset, generated from
 * script-security's default generic-whitelist (see allowlists/generate).
 *
 * Matching, as the sandbox does it: a method is allowed when an entry names it on the
 * receiver's class or on any superclass or interface it implements (`method
 * java.util.Map putAll java.util.Map` allows it on a LinkedHashMap), or names a Groovy
 * extension method (DefaultGroovyMethods, StringGroovyMethods) that applies; a
 * constructor only by its own class (`new java.util.LinkedHashMap java.util.Map` is not
 * listed, so it is rejected). Classes of the build's own scripts (the Jenkinsfile, the
 * library's vars/ and src/, their closures) and the harness's stand-ins for Jenkins'
 * objects (env, currentBuild, the steps) are always allowed, as in Jenkins.
 *
 * Not checked (the real sandbox checks them): calls without an explicit receiver
 * (steps and the script's own methods, which Jenkins allows anyway), property and
 * field access, operators (`+`, `in`, `[]`, `<<`), casts and implicit GString/closure
 * coercions, and static fields. Overload choice is approximate: an entry for any
 * applicable overload allows the call.
 */
class Sandbox {

    static final List<Class> GROOVY_METHODS = [DefaultGroovyMethods, StringGroovyMethods, DefaultGroovyStaticMethods]
    static volatile Set<String> allowed = null
    /** classes that are always allowed: the build's scripts, the harness's stand-ins. */
    static volatile Closure<Boolean> trusted = { Class c -> false }

    static synchronized void load(File allowList) {
        if (allowed != null) {
            return
        }
        Set<String> entries = new HashSet<String>()
        allowList.eachLine('UTF-8') { String line ->
            String l = line.trim()
            if (l && !l.startsWith('#')) {
                entries.add(l.split(/\s+/).join(' '))
            }
        }
        allowed = entries
    }

    static CompilationCustomizer customizer() {
        return new SandboxCustomizer()
    }

    // ------------------------------------------------------------ runtime checks

    static Object call(Object receiver, String name, boolean safe, Object[] args) {
        if (receiver == null && safe) {
            return null
        }
        if (receiver != null) {
            check(receiver, name, args)
        }
        return InvokerHelper.invokeMethod(receiver, name, args)
    }

    static Object construct(Class type, Object[] args) {
        if (!trusted(type)) {
            List<String> candidates = []
            for (Constructor k in type.constructors) {
                if (applicable(k.parameterTypes, args, k.isVarArgs())) {
                    String sig = "new ${type.name}${names(k.parameterTypes)}"
                    if (allowed.contains(sig)) {
                        return InvokerHelper.invokeConstructorOf(type, args)
                    }
                    candidates << sig
                }
            }
            if (candidates) {
                throw reject(candidates)
            }
        }
        return InvokerHelper.invokeConstructorOf(type, args)
    }

    private static boolean trusted(Class c) {
        return trusted.call(c)
    }

    static void check(Object receiver, String name, Object[] args) {
        if (receiver instanceof Class) {
            Class type = (Class) receiver
            if (trusted(type)) {
                return
            }
            List<String> candidates = []
            for (Method m in type.methods) {
                if (m.name == name && Modifier.isStatic(m.modifiers) && applicable(m.parameterTypes, args, m.isVarArgs())) {
                    String sig = "staticMethod ${type.name} ${name}${names(m.parameterTypes)}"
                    if (allowed.contains(sig)) {
                        return
                    }
                    candidates << sig
                }
            }
            if (candidates) {
                throw reject(candidates)
            }
            return  // no such static method: Groovy itself fails (or finds an instance method of Class)
        }
        Class c = receiver.getClass()
        if (trusted(c)) {
            return
        }
        List<String> candidates = []
        for (Class t in hierarchy(c)) {
            for (Method m in t.declaredMethods) {
                if (m.name == name && !Modifier.isStatic(m.modifiers) && Modifier.isPublic(m.modifiers)
                        && applicable(m.parameterTypes, args, m.isVarArgs())) {
                    String sig = "method ${t.name} ${name}${names(m.parameterTypes)}"
                    if (allowed.contains(sig)) {
                        return
                    }
                    candidates << sig
                }
            }
        }
        for (Class g in GROOVY_METHODS) {
            for (Method m in g.methods) {
                Class[] p = m.parameterTypes
                if (m.name == name && Modifier.isStatic(m.modifiers) && p.length >= 1 && p.length == args.length + 1
                        && box(p[0]).isInstance(receiver)
                        && applicable(Arrays.copyOfRange(p, 1, p.length), args, false)) {
                    String sig = "staticMethod ${g.name} ${name}${names(p)}"
                    if (allowed.contains(sig)) {
                        return
                    }
                    candidates << sig
                }
            }
        }
        if (candidates) {
            throw reject(candidates)
        }
    }

    private static RuntimeException reject(List<String> candidates) {
        return new SecurityException('org.jenkinsci.plugins.scriptsecurity.sandbox.RejectedAccessException: ' +
            "Scripts not permitted to use ${candidates[0]} (harness sandbox: not in script-security's " +
            'generic-whitelist; a global trusted library may use it, a folder-level one may not)')
    }

    private static List<Class> hierarchy(Class c) {
        LinkedHashSet<Class> seen = new LinkedHashSet<Class>()
        List<Class> todo = [c]
        while (todo) {
            Class t = todo.remove(0)
            if (t != null && seen.add(t)) {
                todo.add(t.superclass)
                todo.addAll(t.interfaces as List)
            }
        }
        return new ArrayList<Class>(seen)
    }

    private static String names(Class[] types) {
        return types.collect { ' ' + name(it) }.join('')
    }

    private static String name(Class t) {
        return t.isArray() ? name(t.componentType) + '[]' : t.name
    }

    private static final Map<Class, Class> BOXES = [(boolean): Boolean, (byte): Byte, (char): Character,
        (short): Short, (int): Integer, (long): Long, (float): Float, (double): Double]

    private static Class box(Class t) {
        return t.isPrimitive() ? BOXES[t] : t
    }

    private static boolean applicable(Class[] params, Object[] args, boolean varArgs) {
        if (varArgs && args.length >= params.length - 1) {
            for (int i = 0; i < params.length - 1; i++) {
                if (!fits(params[i], args[i])) {
                    return false
                }
            }
            return true
        }
        if (params.length != args.length) {
            return false
        }
        for (int i = 0; i < params.length; i++) {
            if (!fits(params[i], args[i])) {
                return false
            }
        }
        return true
    }

    private static boolean fits(Class param, Object arg) {
        if (arg == null) {
            return !param.isPrimitive()
        }
        Class p = box(param)
        if (p.isInstance(arg)) {
            return true
        }
        if (arg instanceof GString && p.isAssignableFrom(String)) {
            return true
        }
        if (arg instanceof Number && Number.isAssignableFrom(p)) {
            return true
        }
        if (arg instanceof Closure && p.isInterface()) {
            return true  // closure coercion to a single-method interface
        }
        return false
    }

}

/** Compile-time half of Sandbox: routes explicit-receiver calls and constructors through Sandbox's checks. */
class SandboxCustomizer extends CompilationCustomizer {

    SandboxCustomizer() {
        super(CompilePhase.CONVERSION)
    }

    @Override
    void call(SourceUnit source, GeneratorContext context, ClassNode classNode) {
        SandboxRewriter rewriter = new SandboxRewriter(source)
        for (MethodNode m in classNode.methods) {
            if (m.code != null) {
                m.code.visit(rewriter)
            }
        }
        for (MethodNode m in classNode.declaredConstructors) {
            if (m.code != null) {
                m.code.visit(rewriter)
            }
        }
        // field initialisers (static final maps of src classes) use only literals and operators
    }

}

class SandboxRewriter extends ClassCodeExpressionTransformer {

    private final SourceUnit source
    private static final ClassNode SANDBOX = ClassHelper.make(Sandbox)

    SandboxRewriter(SourceUnit source) {
        this.source = source
    }

    @Override
    protected SourceUnit getSourceUnit() {
        return source
    }

    @Override
    Expression transform(Expression e) {
        if (e == null) {
            return null
        }
        if (e instanceof ClosureExpression) {
            ((ClosureExpression) e).code?.visit(this)
            return e
        }
        if (e instanceof MethodCallExpression) {
            MethodCallExpression call = (MethodCallExpression) e
            Expression receiver = call.objectExpression
            boolean self = receiver instanceof VariableExpression &&
                ((VariableExpression) receiver).name in ['this', 'super']
            if (!call.implicitThis && !self && !call.spreadSafe && call.method instanceof ConstantExpression) {
                List<Expression> args = arguments(call.arguments)
                if (args != null) {
                    Expression rewritten = new StaticMethodCallExpression(SANDBOX, 'call', new ArgumentListExpression([
                        transform(receiver), new ConstantExpression(call.methodAsString),
                        new ConstantExpression(call.safe, true),
                        new ArrayExpression(ClassHelper.OBJECT_TYPE, args.collect { transform(it) }),
                    ]))
                    rewritten.sourcePosition = e
                    return rewritten
                }
            }
        }
        if (e instanceof ConstructorCallExpression) {
            ConstructorCallExpression ctor = (ConstructorCallExpression) e
            if (!ctor.isSpecialCall() && !ctor.isUsingAnonymousInnerClass()) {
                List<Expression> args = arguments(ctor.arguments)
                if (args != null) {
                    Expression rewritten = new StaticMethodCallExpression(SANDBOX, 'construct', new ArgumentListExpression([
                        new ClassExpression(ctor.type),
                        new ArrayExpression(ClassHelper.OBJECT_TYPE, args.collect { transform(it) }),
                    ]))
                    rewritten.sourcePosition = e
                    return rewritten
                }
            }
        }
        return e.transformExpression(this)
    }

    /** The arguments as a list (named arguments as one map), or null when they cannot be (a spread). */
    private static List<Expression> arguments(Expression args) {
        List<Expression> out = []
        if (args instanceof TupleExpression) {
            for (Expression a in ((TupleExpression) args).expressions) {
                if (a instanceof SpreadExpression) {
                    return null
                }
                if (a instanceof NamedArgumentListExpression) {
                    out << new MapExpression(((NamedArgumentListExpression) a).mapEntryExpressions)
                } else {
                    out << a
                }
            }
            return out
        }
        return [args]
    }

}
