"""An example Arena plugin: the `echo-example` agent and the `quickfire` protocol."""
