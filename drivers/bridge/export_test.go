package bridge

// SetFailAfter makes CreateNetwork fail right after step ("bridge",
// "addresses", "up", "firewall", "sysctl").
func (d *Driver) SetFailAfter(step string) { d.failAfter = step }
