// Package importrules holds no code: its test pins which of Dev8's packages
// may import what, so the layout in the README stays true as the code
// grows. A rule broken by a change fails `make test` with the chain of
// imports that broke it.
package importrules
