package fallback

import (
	"fmt"
	"strings"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/ast"
	"github.com/yuin/gopher-lua/parse"
)

const (
	// concatName is the local that holds the bounded `..` implementation in every
	// compiled chunk. It is not a Lua identifier, so no script can name, shadow or
	// replace it.
	concatName = "(concat)"
	// maxSourceBytes bounds a script's source.
	maxSourceBytes = 1 << 20
	// maxNesting bounds the syntax tree's depth: gopher-lua's compiler recurses
	// per level, and a source of nothing but '(' must not exhaust the stack.
	maxNesting = 1000
)

// compileChunk parses source, rewrites every `..` chain into a call of the bounded
// concat (which the VM cannot interrupt when it is a single instruction building a
// huge string) and compiles the result. The chunk expects that function as its
// first vararg. Errors name the script and, where the parser gives it, the line.
func compileChunk(name, source string) (proto *lua.FunctionProto, err error) {
	defer func() {
		if p := recover(); p != nil {
			proto, err = nil, fmt.Errorf("%w: %s: %v", ErrScript, name, p)
		}
	}()
	if len(source) > maxSourceBytes {
		return nil, fmt.Errorf("%w: %s: source larger than %d bytes", ErrScript, name, maxSourceBytes)
	}
	chunk, err := parse.Parse(strings.NewReader(source), name)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrScript, err)
	}
	w := &rewriter{}
	w.stmts(chunk)
	if w.err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrScript, name, w.err)
	}
	prologue := &ast.LocalAssignStmt{Names: []string{concatName}, Exprs: []ast.Expr{&ast.Comma3Expr{}}}
	chunk = append([]ast.Stmt{prologue}, chunk...)
	proto, err = lua.Compile(chunk, name)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrScript, name, err)
	}
	return proto, nil
}

// rewriter walks a syntax tree, replacing concatenations and checking its depth.
type rewriter struct {
	depth int
	err   error
}

func (w *rewriter) enter(n ast.PositionHolder) bool {
	w.depth++
	if w.depth > maxNesting && w.err == nil {
		w.err = fmt.Errorf("line %d: nested more than %d levels deep", n.Line(), maxNesting)
	}
	return w.err == nil
}

func (w *rewriter) leave() { w.depth-- }

func (w *rewriter) stmts(ss []ast.Stmt) {
	for _, s := range ss {
		w.stmt(s)
	}
}

func (w *rewriter) exprs(es []ast.Expr) {
	for i, e := range es {
		es[i] = w.expr(e)
	}
}

func (w *rewriter) stmt(s ast.Stmt) {
	if !w.enter(s) {
		return
	}
	defer w.leave()
	switch s := s.(type) {
	case *ast.AssignStmt:
		w.exprs(s.Lhs)
		w.exprs(s.Rhs)
	case *ast.LocalAssignStmt:
		w.exprs(s.Exprs)
	case *ast.FuncCallStmt:
		s.Expr = w.expr(s.Expr)
	case *ast.DoBlockStmt:
		w.stmts(s.Stmts)
	case *ast.WhileStmt:
		s.Condition = w.expr(s.Condition)
		w.stmts(s.Stmts)
	case *ast.RepeatStmt:
		s.Condition = w.expr(s.Condition)
		w.stmts(s.Stmts)
	case *ast.IfStmt:
		s.Condition = w.expr(s.Condition)
		w.stmts(s.Then)
		w.stmts(s.Else)
	case *ast.NumberForStmt:
		s.Init = w.expr(s.Init)
		s.Limit = w.expr(s.Limit)
		if s.Step != nil {
			s.Step = w.expr(s.Step)
		}
		w.stmts(s.Stmts)
	case *ast.GenericForStmt:
		w.exprs(s.Exprs)
		w.stmts(s.Stmts)
	case *ast.FuncDefStmt:
		w.expr(s.Func)
	case *ast.ReturnStmt:
		w.exprs(s.Exprs)
	case *ast.BreakStmt, *ast.LabelStmt, *ast.GotoStmt:
	default:
		// A node this walker does not know could hide a concatenation.
		w.err = fmt.Errorf("line %d: unsupported statement %T", s.Line(), s)
	}
}

func (w *rewriter) expr(e ast.Expr) ast.Expr {
	if e == nil || !w.enter(e) {
		return e
	}
	defer w.leave()
	switch e := e.(type) {
	case *ast.TrueExpr, *ast.FalseExpr, *ast.NilExpr, *ast.NumberExpr, *ast.StringExpr,
		*ast.Comma3Expr, *ast.IdentExpr:
	case *ast.AttrGetExpr:
		e.Object = w.expr(e.Object)
		e.Key = w.expr(e.Key)
	case *ast.TableExpr:
		for _, f := range e.Fields {
			f.Key = w.expr(f.Key)
			f.Value = w.expr(f.Value)
		}
	case *ast.FuncCallExpr:
		e.Func = w.expr(e.Func)
		e.Receiver = w.expr(e.Receiver)
		w.exprs(e.Args)
	case *ast.LogicalOpExpr:
		e.Lhs = w.expr(e.Lhs)
		e.Rhs = w.expr(e.Rhs)
	case *ast.RelationalOpExpr:
		e.Lhs = w.expr(e.Lhs)
		e.Rhs = w.expr(e.Rhs)
	case *ast.ArithmeticOpExpr:
		e.Lhs = w.expr(e.Lhs)
		e.Rhs = w.expr(e.Rhs)
	case *ast.UnaryMinusOpExpr:
		e.Expr = w.expr(e.Expr)
	case *ast.UnaryNotOpExpr:
		e.Expr = w.expr(e.Expr)
	case *ast.UnaryLenOpExpr:
		e.Expr = w.expr(e.Expr)
	case *ast.FunctionExpr:
		w.stmts(e.Stmts)
	case *ast.StringConcatOpExpr:
		return w.concat(e)
	default:
		w.err = fmt.Errorf("line %d: unsupported expression %T", e.Line(), e)
	}
	return e
}

// concat turns the chain a .. b .. c (right-associative: a .. (b .. c)) into the
// call (concat)(a, b, c), each operand adjusted to one value as `..` does.
func (w *rewriter) concat(e *ast.StringConcatOpExpr) ast.Expr {
	var ops []ast.Expr
	var cur ast.Expr = e
	for {
		c, ok := cur.(*ast.StringConcatOpExpr)
		if !ok {
			ops = append(ops, cur)
			break
		}
		ops = append(ops, c.Lhs)
		cur = c.Rhs
	}
	for i, op := range ops {
		op = w.expr(op)
		switch op := op.(type) {
		case *ast.FuncCallExpr:
			op.AdjustRet = true
		case *ast.Comma3Expr:
			op.AdjustRet = true
		}
		ops[i] = op
	}
	fn := &ast.IdentExpr{Value: concatName}
	fn.SetLine(e.Line())
	fn.SetLastLine(e.LastLine())
	call := &ast.FuncCallExpr{Func: fn, Args: ops, AdjustRet: true}
	call.SetLine(e.Line())
	call.SetLastLine(e.LastLine())
	return call
}
