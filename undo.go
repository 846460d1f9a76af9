package libnetwork

// undo collects what an operation in progress must take back if it fails.
// Each step that changed something records its reversal; a deferred
// rollback runs them newest first when the operation returns an error, so
// a failure half-way leaves nothing behind. The test fail points live
// here too: a test makes an operation fail between two steps by naming the
// point in the controller's failPoint.
//
//	u := c.newUndo()
//	defer u.rollback(&err)
//	if err := doA(); err != nil { return err }
//	if err := u.step("after-a", undoA); err != nil { return err }
type undo struct {
	c     *controller
	steps []func()
}

func (c *controller) newUndo() *undo { return &undo{c: c} }

// add records the reversal of a step just done; nil records nothing.
func (u *undo) add(reverse func()) {
	if reverse != nil {
		u.steps = append(u.steps, reverse)
	}
}

// step records the reversal of a step just done and then passes the fail
// point named point, which fails the operation when a test asks it to.
func (u *undo) step(point string, reverse func()) error {
	u.add(reverse)
	return u.c.failAt(point)
}

// rollback runs the recorded reversals, newest first, if *errp is not
// nil. It is meant to be deferred with the operation's named error.
func (u *undo) rollback(errp *error) {
	if *errp == nil {
		return
	}
	for i := len(u.steps) - 1; i >= 0; i-- {
		u.steps[i]()
	}
	u.steps = nil
}

// failAt is a test fail point: it returns the error the test's failPoint
// gives for point, or nil outside tests.
func (c *controller) failAt(point string) error {
	if c.failPoint == nil {
		return nil
	}
	return c.failPoint(point)
}
