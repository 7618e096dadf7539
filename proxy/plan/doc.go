// Package plan drives guarded ramp plans: a route's split is raised step by step
// (1 → 5 → 25 → 50 → 100 %), each step held until gates comparing the moved cohort in
// the route's to region with the stayed cohort in its from region, over the same
// window since the step began, pass; failing gates halt the plan or roll the route
// back gradually.
//
// The state machine is pure functions (Decide, Next, Start, Pause, Resume, Abort) of
// the plan (conf.Plan), its stored progress (conf.PlanProgress), the route's split,
// the gate readings (Judge, over the proxy/stats gates) and the time. The Controller
// reads, calls them and stores the result through the server's WritePlan: one store
// write holds the step and the split it needs, so a restart or a new leader
// continues from the step in force, neither repeating nor skipping one.
//
// Wiring, as the gateway does it:
//
//	ctrl := plan.New(srv, plan.Options{Read: reader, Instance: name, Driver: leader})
//	srv.SetPlanDriver(ctrl)              // /v1/plans and the plan verbs
//	go elector.Lead(ctx, "plans", name, ctrl.Drive) // or ctrl.Drive(ctx) alone
//
// Nothing here is on the request path: a plan changes the split through the same
// store write and snapshot swap as `shiftgate split`.
package plan
