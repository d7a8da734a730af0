// Simulation model of the Lattice ECP5 MULT18X18D, for the subset the generated designs use
// (hwgen.blocks._util.registered_product): P = A * B with SIGNEDA / SIGNEDB, the A, B and
// output registers either off ("NONE") or on CLK0 with clock enable CE0 and synchronous reset
// RST0 (RESETMODE "SYNC"), no pipeline register, C unused. Other settings stop the simulation.
// Yosys ships the primitive as a black box only; this follows the sysDSP usage guide
// (Lattice TN1267).
`default_nettype none
module MULT18X18D (
    input wire A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16, A17,
    input wire B0, B1, B2, B3, B4, B5, B6, B7, B8, B9, B10, B11, B12, B13, B14, B15, B16, B17,
    input wire C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13, C14, C15, C16, C17,
    input wire SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input wire CLK0, CLK1, CLK2, CLK3,
    input wire CE0, CE1, CE2, CE3,
    input wire RST0, RST1, RST2, RST3,
    output wire P0, P1, P2, P3, P4, P5, P6, P7, P8, P9, P10, P11, P12, P13, P14, P15, P16, P17,
    output wire P18, P19, P20, P21, P22, P23, P24, P25, P26, P27, P28, P29, P30, P31, P32, P33,
    output wire P34, P35
);
    parameter REG_INPUTA_CLK = "NONE";
    parameter REG_INPUTA_CE = "CE0";
    parameter REG_INPUTA_RST = "RST0";
    parameter REG_INPUTB_CLK = "NONE";
    parameter REG_INPUTB_CE = "CE0";
    parameter REG_INPUTB_RST = "RST0";
    parameter REG_INPUTC_CLK = "NONE";
    parameter REG_INPUTC_CE = "CE0";
    parameter REG_INPUTC_RST = "RST0";
    parameter REG_PIPELINE_CLK = "NONE";
    parameter REG_PIPELINE_CE = "CE0";
    parameter REG_PIPELINE_RST = "RST0";
    parameter REG_OUTPUT_CLK = "NONE";
    parameter REG_OUTPUT_CE = "CE0";
    parameter REG_OUTPUT_RST = "RST0";
    parameter CLK0_DIV = "ENABLED";
    parameter CLK1_DIV = "ENABLED";
    parameter CLK2_DIV = "ENABLED";
    parameter CLK3_DIV = "ENABLED";
    parameter HIGHSPEED_CLK = "NONE";
    parameter GSR = "ENABLED";
    parameter CAS_MATCH_REG = "FALSE";
    parameter SOURCEB_MODE = "B_SHIFT";
    parameter MULT_BYPASS = "DISABLED";
    parameter RESETMODE = "SYNC";

    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1,
                     A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1,
                     B0};

    initial begin
        if ((REG_INPUTA_CLK != "NONE" && (REG_INPUTA_CLK != "CLK0" || REG_INPUTA_CE != "CE0"
                                         || REG_INPUTA_RST != "RST0"))
            || (REG_INPUTB_CLK != "NONE" && (REG_INPUTB_CLK != "CLK0" || REG_INPUTB_CE != "CE0"
                                            || REG_INPUTB_RST != "RST0"))
            || (REG_OUTPUT_CLK != "NONE" && (REG_OUTPUT_CLK != "CLK0" || REG_OUTPUT_CE != "CE0"
                                            || REG_OUTPUT_RST != "RST0"))
            || REG_PIPELINE_CLK != "NONE" || REG_INPUTC_CLK != "NONE" || RESETMODE != "SYNC"
            || MULT_BYPASS != "DISABLED" || SOURCEB_MODE != "B_SHIFT") begin
            $display("MULT18X18D model: unsupported settings in %m");
            $finish(1);
        end
    end

    reg [17:0] a_q = 18'd0, b_q = 18'd0;
    reg signed_a_q = 1'b0, signed_b_q = 1'b0;
    always @(posedge CLK0) begin
        if (RST0) begin
            a_q <= 18'd0;
            b_q <= 18'd0;
            signed_a_q <= 1'b0;
            signed_b_q <= 1'b0;
        end else if (CE0) begin
            a_q <= a;
            b_q <= b;
            signed_a_q <= SIGNEDA;
            signed_b_q <= SIGNEDB;
        end
    end

    wire [17:0] a_in = REG_INPUTA_CLK == "NONE" ? a : a_q;
    wire [17:0] b_in = REG_INPUTB_CLK == "NONE" ? b : b_q;
    wire sa = REG_INPUTA_CLK == "NONE" ? SIGNEDA : signed_a_q;
    wire sb = REG_INPUTB_CLK == "NONE" ? SIGNEDB : signed_b_q;
    wire signed [36:0] a_ext = {{19{sa & a_in[17]}}, a_in};
    wire signed [36:0] b_ext = {{19{sb & b_in[17]}}, b_in};
    wire signed [73:0] full = a_ext * b_ext;
    wire [35:0] product = full[35:0];

    reg [35:0] p_q = 36'd0;
    always @(posedge CLK0) begin
        if (RST0)
            p_q <= 36'd0;
        else if (CE0)
            p_q <= product;
    end

    wire [35:0] p = REG_OUTPUT_CLK == "NONE" ? product : p_q;
    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19,
            P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1,
            P0} = p;
endmodule
`default_nettype wire
