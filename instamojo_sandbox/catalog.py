"""Static vocabularies the generator draws from: people, places, products, payment instruments.

Buyer PII is fictitious: e-mail addresses use the reserved ``example.*`` domains, phone numbers
the +91 98xxx range with a fixed sandbox prefix.
"""

from __future__ import annotations

FIRST_NAMES = (
    "Aarav", "Aditi", "Akash", "Ananya", "Arjun", "Bhavna", "Chetan", "Deepa", "Divya", "Farhan",
    "Gaurav", "Geeta", "Harish", "Isha", "Jaya", "Karan", "Kavya", "Lakshmi", "Manish", "Meera",
    "Mohit", "Neha", "Nikhil", "Pooja", "Pranav", "Priya", "Rahul", "Ramesh", "Rohan", "Sahil",
    "Sanjana", "Shreya", "Siddharth", "Sneha", "Sunil", "Tanvi", "Uday", "Varun", "Vidya", "Zoya",
)

LAST_NAMES = (
    "Agarwal", "Banerjee", "Bhat", "Chatterjee", "Das", "Desai", "Fernandes", "Gupta", "Iyer",
    "Jain", "Joshi", "Kapoor", "Khan", "Kulkarni", "Kumar", "Mehta", "Menon", "Mishra", "Nair",
    "Pandey", "Patel", "Patil", "Pillai", "Rao", "Reddy", "Saxena", "Shah", "Sharma", "Singh",
    "Sinha", "Srinivasan", "Thomas", "Varma", "Yadav",
)

EMAIL_DOMAINS = ("example.com", "example.in", "example.org", "example.net")

# (city, state, first three digits of its PIN codes)
CITIES = (
    ("Bengaluru", "Karnataka", "560"),
    ("Mumbai", "Maharashtra", "400"),
    ("Pune", "Maharashtra", "411"),
    ("New Delhi", "Delhi", "110"),
    ("Chennai", "Tamil Nadu", "600"),
    ("Hyderabad", "Telangana", "500"),
    ("Kolkata", "West Bengal", "700"),
    ("Jaipur", "Rajasthan", "302"),
    ("Ahmedabad", "Gujarat", "380"),
    ("Kochi", "Kerala", "682"),
    ("Lucknow", "Uttar Pradesh", "226"),
    ("Indore", "Madhya Pradesh", "452"),
    ("Chandigarh", "Chandigarh", "160"),
    ("Bhubaneswar", "Odisha", "751"),
    ("Guwahati", "Assam", "781"),
)

STREETS = (
    "MG Road", "Residency Road", "Brigade Road", "Linking Road", "FC Road", "Park Street",
    "Anna Salai", "Banjara Hills Road 12", "Civil Lines", "Ashram Road", "Marine Drive",
    "Hazratganj", "Sector 17", "Janpath", "GS Road", "7th Cross Road", "100 Feet Road",
)

# The merchants: username, full name, city (None like the reference's example), website.
MERCHANTS = (
    ("priya_handlooms", "Priya Sharma", "Jaipur", "https://priyahandlooms.example.com"),
    ("chai_point_co", "Arjun Mehta", "Bengaluru", "https://chaipoint.example.in"),
    ("bookbazaar", "Meera Iyer", None, None),
    ("kochi_spices", "Thomas Fernandes", "Kochi", "https://kochispices.example.com"),
    ("pune_pottery", "Sneha Kulkarni", "Pune", None),
)

# Product templates: (title, description, min price ₹, max price ₹, requires shipping, kind, variants)
# kind: "physical", "digital" or "event". Variants: option name → values.
PRODUCTS = (
    ("Handloom Cotton Kurta", "Hand-woven cotton kurta, natural dyes.", 899, 1899, True, "physical",
     {"Size": ("S", "M", "L", "XL"), "Colour": ("Indigo", "Madder Red", "Natural")}),
    ("Block Print Saree", "Sanganeri block-printed mulmul saree.", 2499, 5999, True, "physical",
     {"Colour": ("Indigo", "Mustard", "Rose")}),
    ("Bandhani Dupatta", "Tie-and-dye georgette dupatta.", 699, 1299, True, "physical", None),
    ("Masala Chai Blend 250g", "Assam CTC with cardamom, ginger and clove.", 249, 249, True, "physical",
     {"Pack": ("250g", "500g")}),
    ("Darjeeling First Flush 100g", "Single-estate spring tea.", 599, 899, True, "physical", None),
    ("Chai Gift Box", "Six blends in a wooden box.", 1499, 1499, True, "physical", None),
    ("Cast Iron Chai Kettle", "Seasoned cast-iron kettle, 1 litre.", 1899, 2299, True, "physical", None),
    ("Second-hand Textbook Bundle", "Engineering first-year textbooks, used.", 799, 1599, True, "physical", None),
    ("Malgudi Days (Hardcover)", "R. K. Narayan, collector's edition.", 450, 450, True, "physical", None),
    ("Children's Story Set", "Set of 10 illustrated picture books.", 1199, 1199, True, "physical",
     {"Language": ("English", "Hindi", "Tamil")}),
    ("E-book: GST for Small Businesses", "PDF guide, 120 pages.", 199, 199, False, "digital", None),
    ("E-book: Baking Basics", "PDF recipe book.", 149, 149, False, "digital", None),
    ("Online Course: Excel for Accountants", "Eight recorded sessions.", 1999, 1999, False, "digital", None),
    ("Malabar Black Pepper 200g", "Tellicherry extra bold.", 320, 320, True, "physical",
     {"Pack": ("200g", "500g", "1kg")}),
    ("Green Cardamom 100g", "8 mm bold pods from Idukki.", 380, 380, True, "physical", None),
    ("Spice Sampler", "Twelve whole spices in glass jars.", 1250, 1250, True, "physical", None),
    ("Terracotta Planter", "Hand-thrown, 8 inch.", 450, 850, True, "physical",
     {"Size": ("6 inch", "8 inch", "10 inch")}),
    ("Blue Pottery Mug", "Jaipur blue pottery, 300 ml.", 399, 399, True, "physical",
     {"Pattern": ("Floral", "Geometric")}),
    ("Stoneware Dinner Set", "Sixteen pieces, matte glaze.", 4999, 6499, True, "physical", None),
    ("Pottery Workshop (Weekend)", "Two-day wheel-throwing workshop, materials included.", 3500, 3500, False,
     "event", None),
    ("Tea Tasting Session", "Ninety-minute guided tasting.", 999, 999, False, "event", None),
    ("Book Club Annual Membership", "Twelve monthly meet-ups.", 1200, 1200, False, "event", None),
    ("Yoga Mat (Organic Cotton)", "Hand-loomed, 6 ft.", 1100, 1100, True, "physical",
     {"Colour": ("Natural", "Indigo")}),
    ("Soy Wax Candle", "Sandalwood and vetiver, 200 g.", 549, 549, True, "physical",
     {"Scent": ("Sandalwood", "Jasmine", "Lemongrass")}),
    ("Handmade Soap Trio", "Cold-process soaps, neem and tulsi.", 360, 360, True, "physical", None),
    ("Leather Juttis", "Hand-stitched Punjabi juttis.", 1299, 1599, True, "physical",
     {"Size": ("6", "7", "8", "9", "10")}),
    ("Brass Diya Set", "Set of four.", 799, 799, True, "physical", None),
    ("Custom Portrait Sketch", "A4 pencil portrait from your photo.", 1500, 2500, True, "physical", None),
    ("Gift Card ₹500", "Store credit.", 500, 500, False, "digital", None),
    ("Monthly Tiffin Subscription", "Twenty-two home-style lunches.", 3300, 3300, False, "digital", None),
)

# Link / form payments that are not tied to a product.
LINK_TITLES = (
    "Consultation fee", "Workshop registration", "Advance for custom order", "Donation",
    "Tuition fee", "Event ticket", "Catering advance", "Repair charges", "Membership renewal",
    "Custom tailoring", "Photography session", "Balance payment",
)

# Payment type codes from the reference, with their weight among payments that are not orders.
STANDALONE_PAYMENT_TYPES = (
    ("Dashboard_Smart_Link", 22), ("Dashboard_Link", 18), ("instapay", 12), ("api_rap", 14),
    ("sdk", 6), ("mojoPOS", 12), ("VAN", 4), ("dashboard_rap", 4), ("Dashboard_Product", 8),
)
LINK_PAYMENT_TYPES = {"Dashboard_Smart_Link", "Dashboard_Link", "instapay"}
ORDER_PAYMENT_TYPES = (("Dashboard_Product", 60), ("api_rap", 30), ("sdk", 10))

# (instrument_type, weight, domestic billing instruments)
DOMESTIC_INSTRUMENTS = (
    ("UPI", 46, ("UPI",)),
    ("CARD", 26, ("Domestic Regular Credit Card (Visa/Mastercard)",
                  "Domestic Regular Debit Card (Visa/Mastercard)", "Domestic RuPay Debit Card")),
    ("NETBANKING", 13, ("Domestic Netbanking Category A or B", "Unknown netbanking choice")),
    ("WALLET", 10, ("Wallet (Paytm)", "Wallet (PhonePe)", "Wallet (Mobikwik)")),
    ("EMI", 5, ("Credit Card EMI (Visa/Mastercard)",)),
)
# International cards and Amex pay 3% + ₹3.
INTERNATIONAL_INSTRUMENTS = (
    ("CARD", "International Regular Credit Card (Visa/Mastercard)"),
    ("CARD", "International Regular Debit Card (Visa/Mastercard)"),
    ("CARD", "Amex Card"),
)

FAILURES = (
    ("AUTHENTICATION_FAILED", "3-D Secure authentication failed."),
    ("INSUFFICIENT_FUNDS", "Insufficient funds in the buyer's account."),
    ("BANK_DECLINED", "Declined by the issuing bank."),
    ("USER_DROPPED", "The buyer left the payment page."),
    ("TIMEOUT", "The bank did not respond in time."),
)
