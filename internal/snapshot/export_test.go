package snapshot

// Backdate is backdate, for the tests of package snapshot_test.
var Backdate = backdate
