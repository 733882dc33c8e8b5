/**
 * Base class of every script the harness loads (Jenkinsfiles and the
 * library's vars/*.groovy): a method the script does not define is a pipeline
 * step or a library variable, resolved by the PipelineHarness in the binding,
 * as Jenkins' CpsScript does through its DSL.
 */
abstract class PipelineScript extends Script {

    Object methodMissing(String name, Object args) {
        PipelineHarness harness = (PipelineHarness) getBinding().getVariable('__harness')
        return harness.invoke(name, (Object[]) args)
    }

}
